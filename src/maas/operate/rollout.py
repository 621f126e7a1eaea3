"""Progressive delivery: a champion move becomes a rollout, step by step, judged on live traffic.

Under `deploy.rollout.strategy: progressive` the controller (`maas.operate.controller`) hands
a champion move here instead of switching: the candidate starts beside the previous champion,
which keeps serving the rest, and takes each step's share of the model's requests through the
gateway's weights (`maas.operate.gateway_canary`). Each controller pass judges the step on
what both versions answered in the same window (`maas.operate.rollout_analysis`; the shadow
step on the replay of `maas.operate.shadow`): a failed check rolls back at once (the candidate
out of the routes, `champion` back, tags, audit event, alert); a step lasts at least
`min_seconds` and `min_requests`; the last step passed makes the candidate the only serving
version, as a switch does. The state (`maas.operate.rollout_state`) is written before each
move: a restarted controller resumes the step or finishes the decision, never routes a
rolled-back candidate again and never leaves both versions without weight.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maas.audit import AuditTrail
from maas.clock import utc_timestamp
from maas.config import Params
from maas.config.rollout import ROLLOUT_SHADOW, RolloutParams
from maas.errors import DeployError
from maas.operate.deployment import Deployment
from maas.operate.gateway import Gateway
from maas.operate.gateway_canary import Counts, canary_counts, set_weight, start_canary
from maas.operate.rollout_analysis import duration_check, error_check, latency_check, subtract
from maas.operate.rollout_finish import Finisher
from maas.operate.rollout_fleet import Fleet
from maas.operate.rollout_state import Progress, Rollout, RolloutStore, Window
from maas.operate.rollout_types import Check, verdict
from maas.tracking.registry import set_version_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from maas.operate.targets import LocalTarget

log = logging.getLogger(__name__)
ROLES = ("champion", "candidate")
# checks that can roll a step back but never hold it: quality waits for labels, which may take
# longer than any step, and at 100% the champion answers nothing to compare with; the health
# checks decide when a step ends
FAIL_ONLY = ("shadow_quality", "prediction_shift", "realized_quality")
LIVE_QUALITY = ("prediction_shift", "realized_quality")

ShadowChecks = Callable[[Rollout, float], list[Check]]  # the rollout, its step's start


@dataclass
class Rollouts:
    """One model's rollouts, with what they need built once per pass."""

    model: str
    settings: RolloutParams
    store: RolloutStore
    gateway: Gateway
    fleet: Fleet
    client: MlflowClient
    finisher: Finisher
    shadow: ShadowChecks | None = None
    quality: ShadowChecks | None = None  # the live steps' model-quality checks
    clock: Callable[[], float] = time.time

    @classmethod
    def of(cls, params: Params, client: MlflowClient, target: LocalTarget) -> Rollouts:
        from maas.operate.rollout_fleet import LocalFleet

        fleet = LocalFleet(params, client, target)
        trail = AuditTrail.of(params, client)
        return cls(
            model=params.registry.model_name,
            settings=params.deploy.rollout,
            store=RolloutStore.at(params.deploy.state_dir),
            gateway=target.gateway,
            fleet=fleet,
            client=client,
            finisher=Finisher.of(params, client, target, fleet, trail),
            shadow=shadow_of(params, client),
            quality=quality_of(params),
        )

    def current(self) -> Rollout | None:
        return self.store.get(self.model)

    def tag(self, rollout: Rollout, state: str, reason: str = "") -> None:
        tags = {"rollout_state": state, "rollout_step": f"{rollout.step + 1}/{len(rollout.steps)}"}
        if reason:
            tags["rollout_reason"] = reason[:5000]
        try:
            set_version_tags(self.client, self.model, rollout.candidate, tags)
        except Exception as error:  # the state file and the audit trail say it
            log.warning("%s v%s: tagging the rollout: %s", self.model, rollout.candidate, error)

    def begin(self, version: str, serving: Deployment) -> Progress:
        """Start `version` beside `serving`, at the first step's share. A candidate that does
        not start leaves the previous version serving alone (`failed`)."""
        steps: list[int | str] = list(self.settings.steps)
        try:
            started = self.fleet.start(version)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:1000]
            self.finisher.failed(version, reason, serving.version)
            return Progress("failed", version, "failed", reason)
        rollout = Rollout(
            model=self.model,
            candidate=version,
            previous=serving.version,
            steps=steps,
            containers=started.containers,
            ports=started.ports,
            image=started.image,
            image_id=started.image_id,
            started_at=utc_timestamp(),
            window=Window(self.clock()),
            previous_containers=serving.all_containers,
        )
        self.store.put(rollout)  # before the gateway routes it: a restart knows what runs
        try:
            start_canary(
                self.gateway,
                self.model,
                rollout.ports,
                version,
                weight=rollout.percent,
                sticky=self.settings.sticky,
            )
        except Exception as error:
            self.store.remove(self.model)
            self.fleet.remove(rollout.containers)
            reason = f"the gateway refused the canary: {error}"[:1000]
            self.finisher.failed(version, reason, serving.version)
            return Progress("failed", version, "failed", reason)
        rollout.window = self.window()
        self.store.put(rollout)
        self.finisher.trail.record(
            "rollout_started",
            version,
            previous=serving.version,
            steps=steps,
            containers=rollout.containers,
            image=rollout.image,
        )
        self.tag(rollout, rollout.label)
        return Progress(
            "rolling_out", version, rollout.label, f"v{serving.version} serves the rest"
        )

    def window(self) -> Window:
        """Both versions' counters and latency histograms now: a step's start."""
        counts = canary_counts(self.gateway, self.model)
        route = self.gateway.table().routes[self.model]
        ports = {"champion": route.ports, "candidate": route.canary.ports if route.canary else []}
        return Window(
            self.clock(),
            counts={role: [counts[role].requests, counts[role].errors] for role in ROLES},
            latency={role: self.fleet.latency(ports[role]) for role in ROLES},
        )

    def advance(self, rollout: Rollout) -> Progress:
        """One pass over a rollout in progress: finish a decision being carried out, make the
        gateway say what the state says, judge the step, decide."""
        if rollout.phase == "rolling_back":
            return self.finisher.roll_back(rollout, rollout.reason)
        if rollout.phase == "promoting":
            return self.finisher.promote(rollout, rollout.reason)
        if not self.fleet.running(rollout.containers):
            reason = f"the candidate's container is gone ({', '.join(rollout.containers)})"
            return self.roll_back(rollout, reason)
        self.route(rollout)
        if rollout.paused:
            return Progress("rolling_out", rollout.candidate, rollout.label, "paused by a person")
        checks = self.analyse(rollout)
        rollout.checks = [
            {"name": c.name, "passed": c.passed, "reason": c.reason, "numbers": dict(c.numbers)}
            for c in checks
        ]
        decided = verdict([c for c in checks if c.name not in FAIL_ONLY or c.passed is False])
        if decided is False:
            failed = "; ".join(f"{c.name}: {c.reason}" for c in checks if c.passed is False)
            return self.roll_back(rollout, f"{rollout.step_label} failed: {failed}")
        if decided is None:
            self.store.put(rollout)
            waiting = "; ".join(f"{c.name}: {c.reason}" for c in checks if c.passed is None)
            return Progress("rolling_out", rollout.candidate, rollout.label, waiting)
        if rollout.step + 1 == len(rollout.steps):
            return self.promote(
                rollout, f"every step passed ({', '.join(map(str, rollout.steps))})"
            )
        return self.next_step(rollout, checks)

    def route(self, rollout: Rollout) -> None:
        """The gateway as the state says: the canary re-applied after a restart that lost it,
        the step's weight set again if another one is live."""
        self.gateway.ensure()  # killed, or a reboot: started again from its table
        route = self.gateway.table().routes.get(self.model)
        canary = route.canary if route is not None else None
        if canary is None or canary.version != rollout.candidate:
            start_canary(
                self.gateway,
                self.model,
                rollout.ports,
                rollout.candidate,
                weight=rollout.percent,
                sticky=self.settings.sticky,
            )
            rollout.window = self.window()
            self.store.put(rollout)
        elif canary.weight != rollout.percent:
            set_weight(self.gateway, self.model, rollout.percent)

    def analyse(self, rollout: Rollout) -> list[Check]:
        """The step's checks on the window since it began."""
        now = self.window()
        window = rollout.window
        counts = {
            role: Counts(*now.counts[role]) - Counts(*window.counts.get(role, [0, 0]))
            for role in ROLES
        }
        if any(c.requests < 0 or c.errors < 0 for c in counts.values()):  # a new worker
            counts = {role: Counts(*now.counts[role]) for role in ROLES}
        latency = {
            role: subtract(now.latency[role], window.latency.get(role, {})) for role in ROLES
        }
        champion = counts["champion"]
        if champion.requests < self.settings.min_requests:  # 100%: the champion's past steps
            past = rollout.champion_past
            champion = Counts(champion.requests + past[0], champion.errors + past[1])
        elapsed = self.clock() - window.started
        checks = [duration_check(elapsed, self.settings)]
        if rollout.steps[rollout.step] == ROLLOUT_SHADOW:
            return checks + self.shadow_checks(rollout, ready=bool(checks[0].passed))
        candidate = counts["candidate"]
        checks.append(
            error_check(
                (candidate.requests, candidate.errors),
                (champion.requests, champion.errors),
                self.settings,
            )
        )
        checks.append(latency_check(latency["candidate"], latency["champion"], self.settings))
        if checks[0].passed and verdict(checks) is not False:
            checks += self.live_quality(rollout)
        return checks

    def live_quality(self, rollout: Rollout) -> list[Check]:
        """Both versions' prediction distributions and realized quality in the step's window
        (`maas.operate.rollout_quality`, which reads the prediction log): once the step's
        health checks pass, then every `min_seconds` at most; in between, the last ones."""
        if self.quality is None:
            return []
        if self.clock() - rollout.quality_at >= max(self.settings.min_seconds, 1):
            rollout.quality_at = self.clock()
            return self.quality(rollout, rollout.window.started)
        return [
            Check(c["name"], c["passed"], c["reason"], c.get("numbers", {}))
            for c in rollout.checks
            if c["name"] in LIVE_QUALITY
        ]

    def shadow_checks(self, rollout: Rollout, *, ready: bool) -> list[Check]:
        """The shadow replay's checks: run once the step lasted `min_seconds`, then again
        every `min_seconds` at most (a replay scores thousands of records); in between, the
        last ones."""
        if self.shadow is None:
            raise DeployError("a shadow step, but no shadow replay in this maas")
        if ready and self.clock() - rollout.shadow_at >= max(self.settings.min_seconds, 1):
            rollout.shadow_at = self.clock()
            return self.shadow(rollout, rollout.window.started)
        return [
            Check(c["name"], c["passed"], c["reason"], c.get("numbers", {}))
            for c in rollout.checks
            if c["name"].startswith(ROLLOUT_SHADOW)
        ]

    def next_step(self, rollout: Rollout, checks: list[Check]) -> Progress:
        """The step passed: the next share, a new window (the state first, then the weight)."""
        window = self.window()
        past = rollout.champion_past
        gained = Counts(*window.counts["champion"]) - Counts(*rollout.window.counts["champion"])
        if gained.requests >= 0 and gained.errors >= 0:  # not across a gateway restart
            rollout.champion_past = [past[0] + gained.requests, past[1] + gained.errors]
        passed = rollout.step_label
        rollout.step += 1
        rollout.window = window
        rollout.checks = []
        self.store.put(rollout)
        set_weight(self.gateway, self.model, rollout.percent)
        self.finisher.trail.record(
            "rollout_step",
            rollout.candidate,
            passed=passed,
            now=rollout.step_label,
            checks={c.name: {"reason": c.reason, **c.numbers} for c in checks},
        )
        self.tag(rollout, rollout.label, f"{passed} passed")
        return Progress("rolling_out", rollout.candidate, rollout.label, f"{passed} passed")

    def roll_back(self, rollout: Rollout, reason: str, actor: str = "controller") -> Progress:
        """Carried out by the finisher once written down: a restart finishes it."""
        rollout.phase, rollout.reason = "rolling_back", reason
        self.store.put(rollout)
        return self.finisher.roll_back(rollout, reason, actor)

    def promote(self, rollout: Rollout, reason: str, actor: str = "controller") -> Progress:
        rollout.phase, rollout.reason = "promoting", reason
        self.store.put(rollout)
        return self.finisher.promote(rollout, reason, actor)

    def set_paused(self, rollout: Rollout, paused: bool, actor: str) -> None:
        rollout.paused = paused
        self.store.put(rollout)
        self.finisher.trail.record(
            "rollout_paused" if paused else "rollout_resumed", rollout.candidate, actor=actor
        )
        self.tag(rollout, "paused" if paused else rollout.label)


def shadow_of(params: Params, client: MlflowClient) -> ShadowChecks:
    """The shadow step's checks (`maas.operate.shadow`, imported only when a shadow step
    runs: it brings pandas and Evidently), with the task's thresholds."""
    settings = params.deploy.rollout

    def checks(rollout: Rollout, since: float) -> list[Check]:
        from maas.operate.shadow import shadow_checks

        return shadow_checks(
            params,
            client,
            rollout.previous,
            rollout.candidate,
            since=None,  # the champion's newest served requests, whenever they came
            alpha=settings.alpha,
            **settings.shadow_thresholds(),
        )

    return checks


def quality_of(params: Params) -> ShadowChecks:
    """The live steps' quality checks (`maas.operate.rollout_quality`, imported when a step
    first needs them: pandas and Evidently), with the task's thresholds."""
    settings = params.deploy.rollout

    def checks(rollout: Rollout, since: float) -> list[Check]:
        from maas.operate.rollout_quality import live_quality_checks

        return live_quality_checks(
            params,
            rollout.previous,
            rollout.candidate,
            dt.datetime.fromtimestamp(since, dt.UTC),
            dt.datetime.now(dt.UTC),
            min_samples=settings.min_requests,
            alpha=settings.alpha,
            max_quality_drop=settings.max_quality_drop,
        )

    return checks


def describe(rollout: Rollout) -> dict[str, Any]:
    """What `maas rollout status`, `maas status` and the catalog show of a rollout."""
    return {
        "state": rollout.label,
        "candidate": rollout.candidate,
        "previous": rollout.previous,
        "step": f"{rollout.step + 1}/{len(rollout.steps)}",
        "steps": rollout.steps,
        "weights": {
            f"v{rollout.candidate}": rollout.percent,
            f"v{rollout.previous}": 100 - rollout.percent,
        },
        "step_started": utc_timestamp(rollout.window.started),
        "started_at": rollout.started_at,
        "paused": rollout.paused,
        "checks": rollout.checks,
    }
