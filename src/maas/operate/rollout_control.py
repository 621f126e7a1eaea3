"""What people do to a rollout (`maas rollout status|pause|resume|promote|abort`): each under
the controller's lock, so it never lands in the middle of a pass's step."""

from __future__ import annotations

from typing import Any, Literal

from maas.audit import person
from maas.config import Params
from maas.errors import DeployError
from maas.operate.controller import controller_lock
from maas.operate.rollout import Rollouts, describe
from maas.operate.rollout_state import Rollout, RolloutStore

Action = Literal["pause", "resume", "promote", "abort"]


def rollout_status(params: Params) -> dict[str, Any] | None:
    """The model's rollout in progress (None: none), as `describe` shows it."""
    rollout = RolloutStore.at(params.deploy.state_dir).get(params.registry.model_name)
    return describe(rollout) if rollout is not None else None


def control(params: Params, action: Action, reason: str = "") -> str:
    """Pause or resume the model's rollout, promote its candidate now, or abort it (rolled
    back: `champion` returns to the previous version). One line saying what was done."""
    from maas.operate.targets import LocalTarget, make_target
    from maas.tracking.store import connect

    model = params.registry.model_name
    store = RolloutStore.at(params.deploy.state_dir)
    _in_progress(model, store, action)  # before the lock: a mistyped task makes no folder
    with controller_lock(params.deploy.state_dir):
        rollout = _in_progress(model, store, action)
        target = make_target(params)
        if not isinstance(target, LocalTarget):
            raise DeployError(f"{model}: rollouts run on deploy.target local only")
        rollouts = Rollouts.of(params, connect(params.registry), target)
        who = person()
        if action in ("pause", "resume"):
            if rollout.paused == (action == "pause"):
                return f"{model}: v{rollout.candidate} is already {rollout.label}"
            rollouts.set_paused(rollout, action == "pause", actor=who)
            return f"{model}: v{rollout.candidate} {rollout.label}"
        why = reason or f"{action} by {who}"
        if action == "promote":
            progress = rollouts.promote(rollout, why, actor=who)
        else:
            progress = rollouts.roll_back(rollout, why, actor=who)
        return f"{model}: v{progress.version} {progress.label} ({why})"


def _in_progress(model: str, store: RolloutStore, action: str) -> Rollout:
    rollout = store.get(model)
    if rollout is None or rollout.phase != "running":
        doing = "" if rollout is None else f" (v{rollout.candidate} is {rollout.label})"
        raise DeployError(
            f"{model}: no rollout in progress{doing}, nothing to {action}; `maas promote N` "
            "starts one under deploy.rollout.strategy: progressive"
        )
    return rollout
