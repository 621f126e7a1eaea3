"""Moving `champion` by hand: `maas promote VERSION` and `maas rollback`. The controller then
makes the version the running service; each move is an audit event."""

from __future__ import annotations

from dataclasses import dataclass

from maas.config import Params
from maas.errors import MaasError
from maas.operate.audit import AuditError, audit, person, read_audit
from maas.operate.controller import retry_now
from maas.operate.deployment import read_deployment
from maas.tracking import registry
from maas.tracking.store import connect


class RollbackError(MaasError):
    """There is nothing to roll back to."""


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
    _audit_move(params, "promoted", moved, client, reason)
    return moved


def deploy_history(params: Params) -> list[str]:
    """This model's versions in the order they came to serve, as a stack: a deploy pushes its
    version, a rollback pops the version it leaves (and its deploy lands on the new top)."""
    stack: list[str] = []
    for event in read_audit(params):
        version = str(event.get("version"))
        if event["event"] == "rollback" and len(stack) > 1:
            stack.pop()
        elif event["event"] == "deployed" and (not stack or stack[-1] != version):
            stack.append(version)
    return stack


def previous_deployed_version(params: Params, current: str | None) -> str | None:
    """Where a rollback goes: the version that served before the current one, walking back
    through the deploy history (a second rollback does not return to the version the first
    one left)."""
    stack = deploy_history(params)
    if stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack and stack[-1] != current else None


def rollback(params: Params) -> Promotion:
    """Move `champion` back to the version deployed before the one serving now."""
    current = read_deployment(params.deploy.state_dir, params.deploy.target)
    serving = current.version if current else None
    target = previous_deployed_version(params, serving)
    if target is None:
        raise RollbackError("no earlier deployed version in the audit trail to roll back to")
    client = connect(params.registry)
    registry.promote(client, params.registry.model_name, target, reason="maas rollback")
    moved = Promotion(params.registry.model_name, target, serving)
    _audit_move(params, "rollback", moved, client, "maas rollback")
    return moved


def _audit_move(params: Params, event: str, moved: Promotion, client: object, reason: str) -> None:
    try:
        audit(params, event, moved.version, client, actor=person(), reason=reason,
              previous=moved.previous)  # fmt: skip
    except AuditError as error:  # the alias has moved: say so, not only that the log failed
        raise AuditError(
            f"{moved.model}: champion -> v{moved.version} is set, but not in the audit trail: "
            f"{error}"
        ) from error
