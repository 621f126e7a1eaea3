"""Moving `champion` by hand: `maas promote VERSION` and `maas rollback`, and `maas approve
VERSION` (a signed deploy override). The controller then makes the version the running
service; each move and approval is an audit event."""

from __future__ import annotations

from dataclasses import dataclass

from maas.audit import AuditTrail, person
from maas.config import Params
from maas.errors import ApprovalError, AuditError, RollbackError
from maas.operate.controller import Outcome, retry_now, withdraw
from maas.operate.deployment import read_deployment
from maas.operate.history import History
from maas.operate.targets import make_target
from maas.tracking import registry
from maas.tracking.alias_lock import champion_lock
from maas.tracking.approval import override_tags
from maas.tracking.keyring import load_key
from maas.tracking.store import connect
from maas.tracking.verdict import verdict_problem


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str
    previous: str | None  # the champion (promote) or the serving version (rollback) before


def promote(params: Params, version: str, reason: str = "maas promote") -> Promotion:
    """Move `champion` to `version`; a version whose deploy failed is retried at once."""
    name = params.registry.model_name
    client = connect(params.registry)
    before = registry.get_alias_version(client, name, registry.CHAMPION)
    target = registry.promote(client, name, version, reason=reason)
    retry_now(client, name, target)
    moved = Promotion(name, str(target.version), str(before.version) if before else None)
    _audit_move(AuditTrail.of(params, client), "promoted", moved, reason)
    return moved


@dataclass(frozen=True)
class Approval:
    model: str
    version: str
    by: str  # user@host of the key holder who signed it


def approve(params: Params, version: str, reason: str) -> Approval:
    """Sign a deploy override for `version` with the gate key (maas.tracking.approval): the
    controller then deploys it although a check failed. Refused (ApprovalError) for a version
    whose own verdict does not verify: an approval covers a failed check, never a version
    registered outside the pipeline or changed since."""
    if not reason.strip():
        raise ApprovalError("an approval needs a reason (--reason TEXT): it goes on the record")
    key = load_key(params.promotion.verdict_key_file)
    name = params.registry.model_name
    client = connect(params.registry)
    target = registry.get_version(client, name, version)
    number, tags = str(target.version), dict(target.tags)
    problem = verdict_problem(key, name, number, target.run_id, tags)
    if problem is not None:
        raise ApprovalError(
            f"v{number} cannot be approved: {problem}; an approval covers a failed check, "
            "never a version changed since the pipeline registered it"
        )
    by = person()
    # audited before the tags: an approval never takes effect without its record
    AuditTrail.of(params, client).record("approved", number, actor=by, reason=reason)
    registry.set_version_tags(
        client, name, number, override_tags(key, name, number, tags, reason, by)
    )
    return Approval(name, number, by)


def rollback(params: Params) -> Promotion:
    """Move `champion` back to the version deployed before the one serving now."""
    current = read_deployment(
        params.deploy.state_dir, params.deploy.target, params.registry.model_name
    )
    serving = current.version if current else None
    client = connect(params.registry)
    trail = AuditTrail.of(params, client)
    target = History.read(trail).previous(serving)
    if target is None:
        raise RollbackError("no earlier deployed version in the audit trail to roll back to")
    registry.promote(client, params.registry.model_name, target, reason="maas rollback")
    moved = Promotion(params.registry.model_name, target, serving)
    _audit_move(trail, "rollback", moved, "maas rollback")
    return moved


def undeploy(params: Params) -> tuple[str | None, Outcome]:
    """Take the model out of service: remove `champion`, so that no controller brings it
    back, and stop what serves now (whether or not `maas watch` runs). Returns the version
    that was champion and what the pass did. `maas promote N` serves again."""
    name = params.registry.model_name
    client = connect(params.registry)
    with champion_lock(client.tracking_uri, name):
        before = registry.get_alias_version(client, name, registry.CHAMPION)
        if before is not None:
            client.delete_registered_model_alias(name, registry.CHAMPION)
    if before is not None:
        AuditTrail.of(params, client).record(
            "champion_removed",
            str(before.version),
            actor=person(),
            reason="maas undeploy",
        )
    return (str(before.version) if before else None), withdraw(params, client, make_target(params))


def _audit_move(trail: AuditTrail, event: str, moved: Promotion, reason: str) -> None:
    try:
        trail.record(
            event,
            moved.version,
            actor=person(),
            reason=reason,
            previous=moved.previous,
        )
    except AuditError as error:  # the alias has moved: say so, not only that the log failed
        raise AuditError(
            f"{moved.model}: champion -> v{moved.version} is set, but not in the audit trail: "
            f"{error}"
        ) from error
