"""The promotion controller: the version at `champion` becomes the running service.

Level-triggered: each pass compares the desired version (the alias) with the deployed one
(the target's state) and converges, so a missed event or a restart never leaves the wrong
version running. Policy is enforced here too: a version that failed data validation, the
gate or infra-validation is refused unless a key holder signed an override (`maas approve`,
maas.tracking.approval); a version whose signed verdict does not verify is always refused.
Every decision goes to the audit trail (`maas.operate.audit`) and onto the version's tags.
The release itself (package -> deploy -> record) is passed in: the Prefect release flow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from maas.config import Params
from maas.errors import LockBusy
from maas.files import locked
from maas.operate.audit import AuditTrail, registry_client
from maas.operate.catalog import publish
from maas.operate.deployment import Deployment
from maas.operate.history import move_recorded, previous_deployed_version
from maas.operate.records import record_replaced, record_undeployed
from maas.operate.targets import Target, make_target
from maas.tracking.approval import OVERRIDE_BY_TAG, OVERRIDE_TAG, override_problem
from maas.tracking.registry import (
    CHAMPION,
    get_alias_version,
    model_exists,
    set_version_tags,
    version_digests,
)
from maas.tracking.store import connect
from maas.tracking.verdict import load_key, verdict_problem

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

RETRY_AFTER_S = 300  # a failed deploy of the same champion is retried after this long


# what one pass did (the catalog and `maas status` show it; `publish` takes it as the state)
Action = Literal[
    "in_sync", "no_champion", "deployed", "undeployed", "refused", "failed", "waiting", "busy"
]


@dataclass(frozen=True)
class Outcome:
    action: Action
    version: str | None
    detail: str = ""


def policy_problem(
    key: str, model: str, version: str, run_id: str | None, tags: dict[str, str]
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
            trail = AuditTrail.of(params, client)
            outcome = _converge(params, client, trail, target, release, retry)
            gone = outcome.action in ("no_champion", "undeployed")
            publish(
                params, target, outcome.action, None if gone else outcome.version, outcome.detail
            )
            return outcome
    except LockBusy as busy:
        return Outcome("busy", None, str(busy))


def withdraw(params: Params, client: MlflowClient, target: Target) -> Outcome:
    """One pass that only takes out of service, never deploys (`maas undeploy`, after it
    removed the alias): waits for a running pass, then stops what serves if `champion` is
    still unset."""
    with controller_lock(params.deploy.state_dir):
        desired = get_alias_version(client, params.registry.model_name, CHAMPION)
        if desired is not None:  # set again meanwhile: the controller deploys it
            return Outcome("in_sync", str(desired.version), "champion was set again")
        name = params.registry.model_name
        trail = AuditTrail.of(params, client)
        outcome = _without_champion(params, client, trail, target, target.current(name))
        publish(params, target, outcome.action, None)
        return outcome


def _converge(
    params: Params,
    client: MlflowClient,
    trail: AuditTrail,
    target: Target,
    release: Release,
    retry: frozenset[str],
) -> Outcome:
    desired = get_alias_version(client, params.registry.model_name, CHAMPION)
    actual = target.current(params.registry.model_name)
    if desired is None:
        return _without_champion(params, client, trail, target, actual)
    version = str(desired.version)
    if actual is not None and actual.version == version:
        unhealthy = target.problem(actual, version_digests(desired))
        if unhealthy is None:  # the world, not only the state file, says in sync
            return Outcome("in_sync", version, actual.endpoint)
        log.warning(
            "%s v%s is recorded as serving, but %s: deploying it again",
            params.registry.model_name,
            version,
            unhealthy,
        )
        publish(params, target, "unhealthy", version, unhealthy)
        if dict(desired.tags).get("deploy_status") != "failed":  # audited once, not each pass
            trail.record("unhealthy", version, reason=unhealthy)
    rollback = actual is not None and version == previous_deployed_version(trail, actual.version)
    if not move_recorded(trail, version):  # moved in the MLflow UI or by a script
        trail.record(
            "rollback" if rollback else "promoted",
            version,
            actor=registry_client(params),
            previous=actual.version if actual else None,
            reason="champion set outside maas",
        )
    tags = dict(desired.tags)
    key = load_key(params.promotion.verdict_key_file)
    name = params.registry.model_name
    problem = policy_problem(key, name, version, desired.run_id, tags)
    if problem is not None:
        if tags.get("deploy_status") != "refused":  # audit a refusal once, not each pass
            reason = f"v{version} not deployed: {problem}"
            refused = {"deploy_status": "refused", "deploy_reason": reason}
            # audited first: a pass killed between the two audits again rather than never
            trail.record("refused", version, reason=reason)
            set_version_tags(client, params.registry.model_name, version, refused)
        return Outcome("refused", version, problem)
    if (
        tags.get("deploy_status") == "failed"
        and _recent(tags.get("deploy_attempted_at"))
        and version not in retry
    ):
        return Outcome("waiting", version, tags.get("deploy_reason", ""))
    if tags.get(OVERRIDE_TAG) and tags.get("deploy_status") == "refused":
        trail.record("override", version, reason=tags[OVERRIDE_TAG], by=tags.get(OVERRIDE_BY_TAG))
    sweep_orphans(target, params.registry.model_name)
    publish(params, target, "switching", version, f"v{version} is being released")
    try:
        deployment = release(version)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"[:1000]
        now = target.current(name)
        if now is not None and now.version == version:  # it serves: a later step failed
            trail.record(
                "deployed",
                version,
                image=now.image,
                endpoint=now.endpoint,
                target=target.name,
                previous=actual.version if actual else None,
                note=f"serving; recording the deployment failed: {reason}",
            )
            return Outcome("deployed", version, f"serving; recording failed: {reason}")
        # nothing switched: the previous version keeps serving
        failed = {
            "deploy_status": "failed",
            "deploy_reason": reason,
            "deploy_attempted_at": str(int(time.time())),
        }
        # audited before the tag that stops the retries: the tag never shows without its record
        trail.record(
            "failed",
            version,
            reason=reason,
            still_serving=actual.version if actual else None,
        )
        set_version_tags(client, params.registry.model_name, version, failed)
        return Outcome("failed", version, reason)
    trail.record(
        "deployed",
        version,
        image=deployment.image,
        image_id=deployment.image_id,
        endpoint=deployment.endpoint,
        target=target.name,
        previous=actual.version if actual else None,
    )
    try:  # bookkeeping: the next deploy sweeps again what this one could not write
        record_replaced(client, name, version, "rolled_back" if rollback else "replaced")
    except Exception as error:
        log.warning("v%s serves; marking the versions it replaced failed: %s", version, error)
    return Outcome("deployed", version, deployment.endpoint)


def _without_champion(
    params: Params,
    client: MlflowClient,
    trail: AuditTrail,
    target: Target,
    actual: Deployment | None,
) -> Outcome:
    """No version is champion: what serves is taken out of service (`maas undeploy`, or the
    alias deleted in the UI). A registered model that is not there at all (a wrong tracking
    URI, a registry being rebuilt) is not a decision to stop: what serves keeps serving."""
    name = params.registry.model_name
    if actual is None:
        return Outcome("no_champion", None)
    if not model_exists(client, name):
        log.warning(
            "registered model %s not found in the registry: v%s keeps serving", name, actual.version
        )
        return Outcome("no_champion", None, f"registered model {name} not found")
    target.stop(name)
    trail.record(
        "undeployed",
        actual.version,
        endpoint=actual.endpoint,
        reason="no version has the champion alias",
    )
    try:
        record_undeployed(client, name, actual.version)
    except Exception as error:  # the audit says it; the tags follow on the next deploy
        log.warning(
            "v%s is out of service; recording it on the version failed: %s", actual.version, error
        )
    return Outcome("undeployed", actual.version, actual.endpoint)


def sweep_orphans(target: Target, model: str) -> None:
    """Remove containers an interrupted deploy left behind (done before each deploy and when a
    controller starts, not on every in-sync pass: listing containers is not free)."""
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


def watch(
    tasks: Sequence[tuple[Params, Release]],
    interval_s: float,
    once: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Reconcile every task's model now, on every MLflow alias webhook, and every
    `interval_s`, until Ctrl-C or `stop` is set (SIGTERM: `maas.cli.common.stop_on_sigterm`).
    The tasks share the deploy section (one state folder, one stable address)."""
    stop = stop or threading.Event()
    first = tasks[0][0]
    targets = [make_target(params) for params, _ in tasks]
    names = [params.registry.model_name for params, _ in tasks]
    wake = threading.Event()
    retry: set[tuple[str, str]] = set()  # (model, version) the alias was set on again
    retry_lock = threading.Lock()
    server = None
    last: dict[str, Outcome] = {}

    def on_alias_event(event: dict[str, Any]) -> None:  # the receiver's thread
        data = event.get("data") or {}
        if event.get("action") == "created" and data.get("alias") == CHAMPION:
            with retry_lock:
                retry.add((str(data.get("name")), str(data.get("version"))))
        wake.set()

    if first.deploy.webhook_listen and not once:
        from maas.operate.receiver import serve_webhooks
        from maas.tracking.webhooks import load_or_create_secret

        secret = load_or_create_secret(first.deploy.webhook_secret_file)
        server = serve_webhooks(first.deploy.webhook_listen, secret, names, on_alias_event)
        log.info("webhooks: POST http://%s/webhook", first.deploy.webhook_listen)
    with contextlib.suppress(LockBusy), controller_lock(first.deploy.state_dir, wait=False):
        for target, name in zip(targets, names, strict=True):
            sweep_orphans(target, name)  # what a killed controller left
    try:
        while not stop.is_set():
            wake.clear()
            with retry_lock:
                asked = frozenset(retry)
                retry.clear()
            for (params, release), target, name in zip(tasks, targets, names, strict=True):
                if stop.is_set():
                    return
                versions = frozenset(version for model, version in asked if model == name)
                try:
                    client = connect(params.registry)
                    outcome = reconcile_once(params, client, target, release, versions)
                    # quiet while nothing changes: one line per new state, not one per pass,
                    # and one for each pass a webhook delivery asked for
                    changed = outcome != last.get(name) or versions
                    log.log(
                        logging.INFO if changed else logging.DEBUG,
                        "reconcile %s: %s v%s %s%s",
                        name,
                        outcome.action,
                        outcome.version,
                        outcome.detail,
                        f" (asked by a delivery for v{', v'.join(sorted(versions))})"
                        if versions
                        else "",
                    )
                    last[name] = outcome
                except Exception as error:  # registry unreachable: keep serving, try later
                    log.warning("reconcile %s failed: %s", name, error)
            if once or stop.is_set():
                return
            wake.wait(interval_s)
    finally:
        if server is not None:
            server.shutdown()
