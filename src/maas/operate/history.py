"""What the audit trail says about a model's past: the order its versions served in, where a
rollback goes, and whether the latest move of `champion` has been recorded.

`maas promote`, `maas rollback` and the training flow's gate audit their own moves; a move
made by anyone else (a person in the MLflow UI, a script with a registry client) reaches the
controller unrecorded, and the controller records it (`maas.operate.controller`).
"""

from __future__ import annotations

from typing import Any

from maas.operate.audit import AuditTrail

MOVES = ("promoted", "rollback")  # events that move `champion`
SERVES = "deployed"


def deploy_history(trail: AuditTrail) -> list[str]:
    """This model's versions in the order they came to serve, as a stack: a deploy pushes its
    version, a rollback pops the version it leaves (and its deploy lands on the new top)."""
    stack: list[str] = []
    for event in trail.read():
        version = str(event.get("version"))
        if event["event"] == "rollback" and len(stack) > 1:
            stack.pop()
        elif event["event"] == SERVES and (not stack or stack[-1] != version):
            stack.append(version)
    return stack


def previous_deployed_version(trail: AuditTrail, current: str | None) -> str | None:
    """Where a rollback goes: the version that served before the current one, walking back
    through the deploy history (a second rollback does not return to the version the first
    one left)."""
    stack = deploy_history(trail)
    if stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack and stack[-1] != current else None


def _last_move(events: list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("event") in (*MOVES, SERVES):
            return str(event.get("version"))
    return None


def move_recorded(trail: AuditTrail, champion: str) -> bool:
    """Whether the move of `champion` to this version is in the audit trail: the latest move
    or deploy there names it. The local trail is read first; the one in MLflow holds moves
    made from other machines (`maas promote` on a laptop against the team's server)."""
    if _last_move(trail.read()) == champion:
        return True
    try:
        return _last_move(trail.read_mlflow()) == champion
    except Exception:  # the registry is down: better a second record than none
        return False
