"""The promotion controller: the version at `champion` becomes the running service.

Level-triggered: each pass compares the desired version (the alias) with the deployed one
(the target's state) and converges, so a missed event or a restart never leaves the wrong
version running. Policy is enforced here too: a version that failed data validation, the
gate or infra-validation is refused unless it carries a `deploy_override` tag with a reason.
Every decision is appended to an audit trail: a local JSON-lines file (written first, so it
survives an unreachable registry) and one run per event in the MLflow experiment
`<model>-audit` (shared by everyone on the same tracking server), and mirrored on the
version's tags.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from maas.config import Params
from maas.deploy import Deployment, KubernetesTarget, LocalTarget

log = logging.getLogger(__name__)

OVERRIDE_TAG = "deploy_override"
RETRY_AFTER_S = 300  # a failed deploy of the same champion is retried after this long


@dataclass(frozen=True)
class Outcome:
    action: str  # in_sync | no_champion | deployed | refused | failed | waiting | busy
    version: str | None
    detail: str = ""


class Target(Protocol):
    name: str

    def current(self) -> Deployment | None: ...
    def deploy(self, model: str, version: str, image: str) -> Deployment: ...
    def remove_orphans(self, model: str) -> list[str]: ...
    def stop(self) -> None: ...


def make_target(params: Params) -> Target:
    from maas import containers

    if params.deploy.target == "kubernetes":
        return KubernetesTarget(
            params.deploy.state_dir, params.deploy.kubernetes_dir, params.deploy.kubernetes_replicas
        )
    backend, reasons = containers.select_backend(params.packaging.backend)
    runtime = containers.runtime_for(backend) if backend else None
    if runtime is None:
        raise containers.ContainerError(f"no container runtime to deploy with: {reasons}")
    return LocalTarget(
        params.deploy.state_dir,
        params.deploy.address,
        runtime,
        network=params.packaging.network,
        ready_timeout_s=params.packaging.infra_validation.ready_timeout_s,
    )


def person() -> str:
    """Who ran a command, for the audit trail: user@host."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return f"uid-{os.getuid()}@{socket.gethostname()}"


def audit_experiment(params: Params) -> str:
    return f"{params.registry.model_name}-audit"


def audit(
    params: Params, event: str, version: str | None, client: Any = None, **details: Any
) -> dict[str, Any]:
    """Append one event to the audit trail (`deploy.audit_log`) and mirror it into MLflow.

    who (`actor`), what (`event`, `version`), when (`ts`), why (`reason` and other details).
    """
    record = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "event": event,
        "model": params.registry.model_name,
        "version": version,
        "actor": details.pop("actor", "controller"),
        **details,
    }
    append_line(params.deploy.audit_log, json.dumps(record))
    if client is not None:
        try:
            _mirror_to_mlflow(client, params, record)
        except Exception as error:  # the local line is written; the registry may be down
            log.warning("audit event not mirrored into MLflow (%s); kept in %s", error,
                        params.deploy.audit_log)  # fmt: skip
    return record


AUDIT_TAG = "maas.audit."


class AuditError(OSError):
    """The local audit trail cannot be written (disk full, read-only); nothing half-written."""


def append_line(path: Path, line: str) -> None:
    """Append one whole line or nothing: on a short or failed write (disk full) the file is
    cut back to its previous length, so the trail never holds half a record."""
    data = (line + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise AuditError(f"cannot write the audit trail {path}: {error.strerror}") from error
    try:
        size = os.fstat(descriptor).st_size
        try:
            if os.write(descriptor, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(descriptor)
        except OSError as error:
            os.ftruncate(descriptor, size)
            raise AuditError(
                f"cannot append to the audit trail {path}: {error.strerror} (nothing written)"
            ) from error
    finally:
        os.close(descriptor)


def _mirror_to_mlflow(client: Any, params: Params, record: dict[str, Any]) -> None:
    from maas.registry import ensure_experiment

    experiment_id = ensure_experiment(client, params.registry, audit_experiment(params))
    tags = {f"{AUDIT_TAG}{k}": str(v)[:5000] for k, v in record.items() if v is not None}
    run = client.create_run(
        experiment_id, run_name=f"{record['event']} v{record['version'] or '-'}", tags=tags
    )
    client.update_run(run.info.run_id, status="FINISHED")  # set_terminated prints a URL


def read_audit(params: Params) -> list[dict[str, Any]]:
    """The local trail, oldest first."""
    path = params.deploy.audit_log
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_mlflow_audit(client: Any, params: Params, limit: int = 20) -> list[dict[str, Any]]:
    """The shared trail in MLflow (every controller and person on this server), oldest first."""
    experiment = client.get_experiment_by_name(audit_experiment(params))
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )
    return [
        {k[len(AUDIT_TAG) :]: v for k, v in run.data.tags.items() if k.startswith(AUDIT_TAG)}
        for run in reversed(runs)
    ]


def policy_problem(tags: dict[str, str]) -> str | None:
    """Why this version must not serve, or None. An override tag (its value: the reason) wins."""
    problems = []
    if tags.get("validation_status") == "failed":
        problems.append("its data validation failed")
    if tags.get("gate_passed") != "true":
        reasons = "; ".join(json.loads(tags.get("gate_reasons") or "[]"))
        problems.append(f"it did not pass the gate ({reasons or 'no gate result'})")
    if tags.get("infra_validation", "").startswith("failed"):
        problems.append(f"its image failed infra-validation ({tags['infra_validation']})")
    if problems and tags.get(OVERRIDE_TAG):
        return None
    return "; ".join(problems) or None


class LockBusy(RuntimeError):
    """Another pass holds the lock (and wait=False)."""


@contextlib.contextmanager
def controller_lock(folder: Path, wait: bool = True) -> Iterator[None]:
    """One converging pass at a time, across processes: two controllers build nothing twice.
    With wait=False a second pass gives up at once (LockBusy) instead of queueing."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "controller.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(f"another controller pass holds {folder / 'controller.lock'}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Promote = Callable[[str], Deployment]  # version -> deployed (the Prefect promotion flow)


def reconcile_once(
    params: Params,
    client: Any,
    target: Target,
    promote: Promote,
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
            return _converge(params, client, target, promote, retry)
    except LockBusy as busy:
        return Outcome("busy", None, str(busy))


def _converge(
    params: Params, client: Any, target: Target, promote: Promote, retry: frozenset[str]
) -> Outcome:
    from maas.registry import CHAMPION, get_alias_version

    orphans = target.remove_orphans(params.registry.model_name)
    if orphans:
        log.info("removed containers left by an interrupted deploy: %s", orphans)
    desired = get_alias_version(client, params.registry.model_name, CHAMPION)
    actual = target.current()
    if desired is None:
        return Outcome("no_champion", None)
    version = str(desired.version)
    if actual is not None and actual.version == version:
        return Outcome("in_sync", version, actual.endpoint)
    tags = dict(desired.tags)
    problem = policy_problem(tags)
    if problem is not None:
        if tags.get("deploy_status") != "refused":  # audit a refusal once, not each pass
            reason = f"v{version} not deployed: {problem}; add tag {OVERRIDE_TAG}=<reason>"
            _tag(client, params, version, {"deploy_status": "refused", "deploy_reason": reason})
            audit(params, "refused", version, client, reason=reason)
        return Outcome("refused", version, problem)
    if (
        tags.get("deploy_status") == "failed"
        and _recent(tags.get("deploy_attempted_at"))
        and version not in retry
    ):
        return Outcome("waiting", version, tags.get("deploy_reason", ""))
    if tags.get(OVERRIDE_TAG) and tags.get("deploy_status") == "refused":
        audit(params, "override", version, client, reason=tags[OVERRIDE_TAG])
    try:
        deployment = promote(version)
    except Exception as error:  # the previous version keeps serving
        reason = f"{type(error).__name__}: {error}"[:1000]
        failed = {"deploy_status": "failed", "deploy_reason": reason,
                  "deploy_attempted_at": str(int(time.time()))}  # fmt: skip
        _tag(client, params, version, failed)
        audit(params, "failed", version, client, reason=reason,
              still_serving=actual.version if actual else None)  # fmt: skip
        return Outcome("failed", version, reason)
    audit(params, "deployed", version, client, image=deployment.image,
          endpoint=deployment.endpoint, target=target.name,
          previous=actual.version if actual else None)  # fmt: skip
    return Outcome("deployed", version, deployment.endpoint)


def deploy_version(params: Params, version: str, image: str) -> Deployment:
    """Run `image` as the service of `version` on the configured target."""
    return make_target(params).deploy(params.registry.model_name, version, image)


def record_deployment(params: Params, client: Any, deployment: Deployment) -> None:
    """Tags back on the version: what serves it, where, since when."""
    _tag(client, params, deployment.version, {
        "deploy_status": "deployed", "endpoint": deployment.endpoint,
        "deployed_at": deployment.deployed_at, "deploy_target": params.deploy.target,
        "deploy_reason": "",
    })  # fmt: skip


def _tag(client: Any, params: Params, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(params.registry.model_name, version, key, value)


def _recent(timestamp: str | None) -> bool:
    return bool(timestamp) and time.time() - float(timestamp or 0) < RETRY_AFTER_S


def previous_deployed_version(params: Params, current: str | None) -> str | None:
    """The version that served before the current one (from the audit trail)."""
    deployed = [e["version"] for e in read_audit(params) if e["event"] == "deployed"]
    for version in reversed(deployed):
        if version != current:
            return str(version)
    return None


def watch(params: Params, promote: Promote, interval_s: float, once: bool = False) -> None:
    """Reconcile now, on every MLflow alias webhook, and every `interval_s` (Ctrl-C stops)."""
    import threading

    from maas.registry import connect

    target = make_target(params)
    wake = threading.Event()
    retry: set[str] = set()  # versions the alias was set on again: retry a failed deploy now
    retry_lock = threading.Lock()
    server = None

    def on_alias_event(event: dict[str, Any]) -> None:  # the receiver's thread
        data = event.get("data") or {}
        if event.get("action") == "created" and data.get("alias") == "champion":
            with retry_lock:
                retry.add(str(data.get("version")))
        wake.set()

    if params.deploy.webhook_listen and not once:
        from maas.webhooks import load_or_create_secret, serve_webhooks

        secret = load_or_create_secret(params.deploy.webhook_secret_file)
        server = serve_webhooks(
            params.deploy.webhook_listen, secret, params.registry.model_name, on_alias_event
        )
        log.info("webhooks: POST http://%s/webhook", params.deploy.webhook_listen)
    try:
        while True:
            wake.clear()
            with retry_lock:
                asked = frozenset(retry)
                retry.clear()
            try:
                outcome = reconcile_once(params, connect(params.registry), target, promote, asked)
                log.info("reconcile: %s v%s %s", outcome.action, outcome.version, outcome.detail)
            except Exception as error:  # registry unreachable: keep serving, try again later
                log.warning("reconcile failed: %s", error)
            if once:
                return
            wake.wait(interval_s)
    finally:
        if server is not None:
            server.shutdown()
