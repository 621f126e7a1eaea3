"""What a rollout step's analysis hands to the rollout's decisions (issue 30): one `Check` per
question asked of the candidate next to the champion in the same window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One check of a rollout step. `passed` is True or False, or None while the sample is
    still too small to say either way (the step waits; it neither promotes nor rolls back on
    noise). `reason`: one line with the numbers, written to the audit event and the version's
    tags. `numbers`: the same numbers by name, for the audit event and `maas rollout status`."""

    name: str
    passed: bool | None
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict)


def verdict(checks: list[Check]) -> bool | None:
    """False when any check failed, None while any is undecided, else True."""
    if any(check.passed is False for check in checks):
        return False
    if any(check.passed is None for check in checks):
        return None
    return True
