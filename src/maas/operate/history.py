"""What the audit trail says about a model's past: the order its versions served in, where a
rollback goes, and whether the latest move of `champion` has been recorded.

`maas promote`, `maas rollback` and the training flow's gate audit their own moves; a move
made by anyone else (a person in the MLflow UI, a script with a registry client) reaches the
controller unrecorded, and the controller records it (`maas.operate.controller`). A `History`
reads the local trail once per pass; the shared trail in MLflow only when the local one does
not name the move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maas.audit import AuditTrail

MOVES = ("promoted", "rollback")  # events that move `champion`
SERVES = "deployed"


@dataclass(frozen=True)
class History:
    """One model's events in the local trail, oldest first, read once."""

    trail: AuditTrail
    events: tuple[dict[str, Any], ...]

    @classmethod
    def read(cls, trail: AuditTrail) -> History:
        return cls(trail, tuple(trail.read()))

    def served(self) -> list[str]:
        """The versions in the order they came to serve, as a stack: a deploy pushes its
        version, a rollback pops the version it leaves (and its deploy lands on the new top)."""
        stack: list[str] = []
        for event in self.events:
            version = str(event.get("version"))
            if event["event"] == "rollback" and len(stack) > 1:
                stack.pop()
            elif event["event"] == SERVES and (not stack or stack[-1] != version):
                stack.append(version)
        return stack

    def previous(self, current: str | None) -> str | None:
        """Where a rollback goes: the version that served before the current one, walking back
        through the deploy history (a second rollback does not return to the version the
        first one left)."""
        stack = self.served()
        if stack and stack[-1] == current:
            stack.pop()
        return stack[-1] if stack and stack[-1] != current else None

    def records_move_to(self, champion: str) -> bool:
        """Whether the move of `champion` to this version is in the audit trail: the latest
        move or deploy there names it. The local trail is read first; the one in MLflow holds
        moves made from other machines (`maas promote` on a laptop against the team's server)."""
        if _last_move(self.events) == champion:
            return True
        try:
            return _last_move(self.trail.read_mlflow()) == champion
        except Exception:  # the registry is down: better a second record than none
            return False


def _last_move(events: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("event") in (*MOVES, SERVES):
            return str(event.get("version"))
    return None
