"""The promotion controller: the version at `champion` becomes the running service.

Level-triggered: each pass compares the desired version (the alias) with the deployed one
(the target's state) and converges, so a missed event or a restart never leaves the wrong
version running. Policy is enforced here too: a version that failed data validation, the
gate or infra-validation is refused unless a key holder signed an override (`maas approve`,
maas.tracking.approval); a version whose signed verdict does not verify is always refused.
Every decision goes to the audit trail (`maas.audit`) and onto the version's tags.
The release itself (package -> deploy -> record) is passed in: the Prefect release flow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from maas.audit import AuditTrail, registry_client
from maas.config import Params
from maas.errors import LockBusy
from maas.files import locked
from maas.operate.catalog import Catalog
from maas.operate.deployment import Deployment
from maas.operate.history import History
from maas.operate.records import record_replaced, record_undeployed
from maas.operate.rollout import Rollouts
from maas.operate.rollout_state import Progress, Rollout, RolloutStore
from maas.operate.targets import LocalTarget, Target
from maas.tracking.approval import OVERRIDE_BY_TAG, OVERRIDE_TAG, override_problem
from maas.tracking.keyring import Key, load_key
from maas.tracking.registry import (
    CHAMPION,
    get_alias_version,
    model_exists,
    set_version_tags,
    version_digests,
)
from maas.tracking.verdict import verdict_problem

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

RETRY_AFTER_S = 300  # a failed deploy of the same champion is retried after this long


# what one pass did (the catalog and `maas status` show it; `publish` takes it as the state)
Action = Literal[
    "in_sync",
    "no_champion",
    "deployed",
    "undeployed",
    "refused",
    "failed",
    "waiting",
    "busy",
    "rolling_out",
    "rolled_back",
]


@dataclass(frozen=True)
class Outcome:
    action: Action
    version: str | None
    detail: str = ""
    label: str = ""  # what the catalog says instead of the action's state (`canary 25%`)


def policy_problem(
    key: Key, model: str, version: str, run_id: str | None, tags: dict[str, str]
) -> str | None:
    """Why this version must not serve, or None (`key`: the gate key). Its signed verdict must
    verify: no override covers a version registered outside the pipeline or whose tags or
    digests changed since. A failed check (data validation, the gate, infra-validation) is
    covered only by an override a key holder signed (`maas approve`), never by a tag alone."""
    verdict = verdict_problem(key, model, version, run_id, tags)
    if verdict is not None:
        return f"{verdict}; no override covers that: register it again through the pipeline"
    problems = []
    if tags.get("validation_status") == "failed":
        problems.append("its data validation failed")
    if tags.get("gate_passed") != "true":
        reasons = "; ".join(json.loads(tags.get("gate_reasons") or "[]"))
        problems.append(f"it did not pass the gate ({reasons or 'no gate result'})")
    if tags.get("infra_validation", "").startswith("failed"):
        problems.append(f"its image failed infra-validation ({tags['infra_validation']})")
    if not problems:
        return None
    override = override_problem(key, model, version, tags)
    if override is None:
        return None
    if tags.get(OVERRIDE_TAG):
        problems.append(f"the override is refused: {override}")
    problems.append(f"a key holder can approve it: maas approve {version} --reason TEXT")
    return "; ".join(problems)


@contextlib.contextmanager
def controller_lock(folder: Path, wait: bool = True) -> Iterator[None]:
    """One converging pass at a time, across processes: two controllers build nothing twice.
    With wait=False a second pass gives up at once (LockBusy) instead of queueing."""
    path = folder / "controller.lock"
    try:
        with locked(path, wait=wait):
            yield
    except BlockingIOError:
        raise LockBusy(f"another controller pass holds {path}") from None


Release = Callable[[str], Deployment]  # version -> deployed (the Prefect release flow)


def reconcile_once(
    params: Params,
    client: MlflowClient,
    target: Target,
    release: Release,
    retry: frozenset[str] = frozenset(),
    wait: bool = True,
) -> Outcome:
    """Converge the deployed version to `champion` once; never raises for a bad version.

    A version whose deploy failed is retried after RETRY_AFTER_S, or at once when it is in
    `retry` (the alias was set on it again: a webhook delivery for that version). With
    wait=False (scheduled runs) a pass returns `busy` while another pass is converging.
    """
    try:
        with controller_lock(params.deploy.state_dir, wait=wait):
            one = Pass.of(params, client, target)
            outcome = one.converge(release, retry)
            gone = outcome.action in ("no_champion", "undeployed")
            state = outcome.label or outcome.action
            one.catalog.publish(state, None if gone else outcome.version, outcome.detail)
            return outcome
    except LockBusy as busy:
        return Outcome("busy", None, str(busy))


def withdraw(params: Params, client: MlflowClient, target: Target) -> Outcome:
    """One pass that only takes out of service, never deploys (`maas undeploy`, after it
    removed the alias): waits for a running pass, then stops what serves if `champion` is
    still unset."""
    with controller_lock(params.deploy.state_dir):
        one = Pass.of(params, client, target)
        desired = get_alias_version(client, one.model, CHAMPION)
        if desired is not None:  # set again meanwhile: the controller deploys it
            return Outcome("in_sync", str(desired.version), "champion was set again")
        outcome = one.without_champion(target.current(one.model))
        one.catalog.publish(outcome.action, None)
        return outcome


@dataclass(frozen=True)
class Pass:
    """One pass over one model, with what it needs built once: the registry client, the
    target, the audit trail, the catalog entry and the gate key's file."""

    model: str
    client: MlflowClient
    target: Target
    trail: AuditTrail
    catalog: Catalog
    key_file: Path
    outsider: str  # the actor of a move made outside maas (see `registry_client`)
    rollouts: Rollouts | None = None  # the local target's progressive rollouts
    progressive: bool = False  # deploy.rollout.strategy: a champion move starts a rollout

    @classmethod
    def of(cls, params: Params, client: MlflowClient, target: Target) -> Pass:
        local = isinstance(target, LocalTarget)
        return cls(
            model=params.registry.model_name,
            client=client,
            target=target,
            trail=AuditTrail.of(params, client),
            catalog=Catalog.of(params, target),
            key_file=params.promotion.verdict_key_file,
            outsider=registry_client(params.registry),
            rollouts=Rollouts.of(params, client, target)
            if isinstance(target, LocalTarget)
            else None,
            progressive=local and params.deploy.rollout.strategy == "progressive",
        )

    def note(
        self, event: str, version: str, tags: dict[str, str] | None = None, **details: Any
    ) -> None:
        """One decision: its audit event first, then the version's tags that show it. A pass
        killed between the two records it again rather than never, and a tag that stops the
        retries never shows without its record."""
        self.trail.record(event, version, **details)
        if tags:
            set_version_tags(self.client, self.model, version, tags)

    def converge(self, release: Release, retry: frozenset[str]) -> Outcome:
        desired = get_alias_version(self.client, self.model, CHAMPION)
        rollout = self.rollouts.current() if self.rollouts is not None else None
        if rollout is not None:
            during = self.during_rollout(rollout, str(desired.version) if desired else None)
            if during is not None:
                return during
        actual = self.target.current(self.model)
        if desired is None:
            return self.without_champion(actual)
        version = str(desired.version)
        tags = dict(desired.tags)
        if actual is not None and actual.version == version:
            unhealthy = self.target.problem(actual, version_digests(desired))
            if unhealthy is None:  # the world, not only the state file, says in sync
                return Outcome("in_sync", version, actual.endpoint)
            log.warning(
                "%s v%s is recorded as serving, but %s: deploying it again",
                self.model,
                version,
                unhealthy,
            )
            self.catalog.publish("unhealthy", version, unhealthy)
            if tags.get("deploy_status") != "failed":  # audited once, not each pass
                self.note("unhealthy", version, reason=unhealthy)
        history = History.read(self.trail)
        rollback = actual is not None and version == history.previous(actual.version)
        if not history.records_move_to(version):  # moved in the MLflow UI or by a script
            self.note(
                "rollback" if rollback else "promoted",
                version,
                actor=self.outsider,
                previous=actual.version if actual else None,
                reason="champion set outside maas",
            )
        problem = policy_problem(load_key(self.key_file), self.model, version, desired.run_id, tags)
        if problem is not None:
            if tags.get("deploy_status") != "refused":  # audit a refusal once, not each pass
                reason = f"v{version} not deployed: {problem}"
                refused = {"deploy_status": "refused", "deploy_reason": reason}
                self.note("refused", version, refused, reason=reason)
            return Outcome("refused", version, problem)
        if (
            tags.get("deploy_status") == "failed"
            and _recent(tags.get("deploy_attempted_at"))
            and version not in retry
        ):
            return Outcome("waiting", version, tags.get("deploy_reason", ""))
        if tags.get(OVERRIDE_TAG) and tags.get("deploy_status") == "refused":
            self.note("override", version, reason=tags[OVERRIDE_TAG], by=tags.get(OVERRIDE_BY_TAG))
        if self.progressive and self.rollouts is not None and actual is not None and not rollback:
            # a new version beside the serving one; a rollback (or a first deploy, or the
            # same version again) switches at once
            sweep_orphans(self.target, self.model)
            log.info("%s v%s: starting a rollout beside v%s", self.model, version, actual.version)
            return self.outcome_of(self.rollouts.begin(version, actual), actual.version)
        return self.release(version, actual, rollback, release)

    def during_rollout(self, rollout: Rollout, champion: str | None) -> Outcome | None:
        """A pass while a rollout runs: its step judged, or its decision finished; a champion
        moved elsewhere meanwhile ends it (rolled back) and the pass goes on (None) to
        serve what `champion` names now."""
        assert self.rollouts is not None
        if rollout.phase != "running" or champion == rollout.candidate:
            return self.outcome_of(self.rollouts.advance(rollout), rollout.previous)
        why = (
            "no version has the champion alias"
            if champion is None
            else f"champion moved to v{champion} during the rollout"
        )
        self.rollouts.roll_back(rollout, why)
        return None

    def outcome_of(self, progress: Progress, previous: str) -> Outcome:
        """A rollout's progress as the pass's outcome; the catalog shows the step."""
        if progress.action == "promoted":
            return Outcome("deployed", progress.version, progress.detail)
        if progress.action == "rolled_back":
            detail = f"v{progress.version} rolled back: {progress.detail}"
            return Outcome("rolled_back", previous, detail, label="in_sync")
        if progress.action == "failed":
            return Outcome("failed", progress.version, progress.detail)
        detail = f"v{previous} serves the rest; {progress.detail}"
        return Outcome("rolling_out", progress.version, detail, label=progress.label)

    def release(
        self, version: str, actual: Deployment | None, rollback: bool, release: Release
    ) -> Outcome:
        """Switch the service to `version`; on failure the previous version keeps serving."""
        previous = actual.version if actual else None
        sweep_orphans(self.target, self.model)
        self.catalog.publish("switching", version, f"v{version} is being released")
        log.info("%s v%s: releasing (package, validate, start, switch)", self.model, version)
        try:
            deployment = release(version)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:1000]
            now = self.target.current(self.model)
            if now is not None and now.version == version:  # it serves: a later step failed
                self.note(
                    "deployed",
                    version,
                    image=now.image,
                    endpoint=now.endpoint,
                    target=self.target.name,
                    previous=previous,
                    note=f"serving; recording the deployment failed: {reason}",
                )
                return Outcome("deployed", version, f"serving; recording failed: {reason}")
            # nothing switched: the previous version keeps serving
            failed = {
                "deploy_status": "failed",
                "deploy_reason": reason,
                "deploy_attempted_at": str(int(time.time())),
            }
            self.note("failed", version, failed, reason=reason, still_serving=previous)
            return Outcome("failed", version, reason)
        self.note(
            "deployed",
            version,
            image=deployment.image,
            image_id=deployment.image_id,
            endpoint=deployment.endpoint,
            target=self.target.name,
            previous=previous,
        )
        try:  # bookkeeping: the next deploy sweeps again what this one could not write
            left_as = "rolled_back" if rollback else "replaced"
            record_replaced(self.client, self.model, version, left_as)
        except Exception as error:
            log.warning("v%s serves; marking the versions it replaced failed: %s", version, error)
        return Outcome("deployed", version, deployment.endpoint)

    def without_champion(self, actual: Deployment | None) -> Outcome:
        """No version is champion: what serves is taken out of service (`maas undeploy`, or
        the alias deleted in the UI). A registered model that is not there at all (a wrong
        tracking URI, a registry being rebuilt) is not a decision to stop: what serves keeps
        serving."""
        if actual is None:
            return Outcome("no_champion", None)
        if not model_exists(self.client, self.model):
            log.warning(
                "registered model %s not found in the registry: v%s keeps serving",
                self.model,
                actual.version,
            )
            return Outcome("no_champion", None, f"registered model {self.model} not found")
        self.target.stop(self.model)
        self.note(
            "undeployed",
            actual.version,
            endpoint=actual.endpoint,
            reason="no version has the champion alias",
        )
        try:
            record_undeployed(self.client, self.model, actual.version)
        except Exception as error:  # the audit says it; the tags follow on the next deploy
            log.warning(
                "v%s is out of service; recording it on the version failed: %s",
                actual.version,
                error,
            )
        return Outcome("undeployed", actual.version, actual.endpoint)


def sweep_orphans(target: Target, model: str) -> None:
    """Remove containers an interrupted deploy left behind (done before each deploy and when a
    controller starts, not on every in-sync pass: listing containers is not free). A rollout
    in progress owns its candidate's containers: nothing is swept until it ends."""
    if isinstance(target, LocalTarget) and RolloutStore.at(target.state_dir).get(model):
        return
    orphans = target.remove_orphans(model)
    if orphans:
        log.info("removed containers left by an interrupted deploy: %s", orphans)


def retry_now(client: MlflowClient, model: str, version: Any) -> None:
    """The alias was set again on a version whose deploy failed: the next pass retries it at
    once instead of waiting RETRY_AFTER_S."""
    if version.tags.get("deploy_status") == "failed":
        client.delete_model_version_tag(model, version.version, "deploy_attempted_at")


def _recent(timestamp: str | None) -> bool:
    return bool(timestamp) and time.time() - float(timestamp or 0) < RETRY_AFTER_S
