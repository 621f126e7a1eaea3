"""deploy.rollout: how a champion move reaches live traffic (progressive delivery, issue 30;
read by `maas.operate.rollout`)."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, field_validator

from maas.config.base import Strict

ROLLOUT_SHADOW = "shadow"  # a step of no live traffic: the candidate replays served requests


class RolloutParams(Strict):
    """deploy.rollout: how a champion move reaches live traffic (docs/operations.md,
    progressive delivery). `immediate`: the whole switch at once; `progressive`: the previous
    champion keeps serving the rest while the candidate takes each step's share of the model's
    requests, judged next to it in the same window, promoted after the last step or rolled
    back at the first failed check."""

    strategy: Literal["immediate", "progressive"] = "immediate"
    steps: list[int | Literal["shadow"]] = [5, 25, 50, 100]  # percent of live traffic
    min_seconds: float = Field(60, ge=0)  # each step lasts at least this long ...
    min_requests: int = Field(200, ge=1)  # ... and until the candidate answered this many
    max_error_rate_increase: float = Field(0.01, ge=0, le=1)  # candidate minus champion
    alpha: float = Field(0.05, gt=0, lt=1)  # the one-sided Fisher exact test's level
    max_p99_ms: float | None = Field(None, gt=0)  # the candidate's p99 (null: no bound)
    max_p99_ratio: float | None = Field(1.5, ge=1)  # candidate p99 / champion p99 (null: none)
    max_quality_drop: float = Field(0.02, ge=0)  # shadow: realized quality, champion minus it
    max_mean_abs_delta: float = Field(0.1, ge=0)  # shadow: mean |candidate - champion|
    # a request header whose hash pins a client to one version (HAProxy hashes headers, not
    # JSON fields of a body: a client that wants an entity sticky sends its key in it)
    sticky: str | None = Field(None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int | str]) -> list[int | str]:
        if not steps:
            raise ValueError("needs at least one step (e.g. [5, 25, 50, 100])")
        if ROLLOUT_SHADOW in steps[1:]:
            raise ValueError("shadow can only be the first step, before any live traffic")
        live = [step for step in steps if isinstance(step, int)]
        if any(not 1 <= step <= 100 for step in live):
            raise ValueError(f"each live step is a percent from 1 to 100, not {live}")
        if any(b <= a for a, b in itertools.pairwise(live)) or live[-1:] != [100]:
            raise ValueError(f"the percents must rise and end at 100, not {live}")
        return steps

    def shadow_thresholds(self) -> dict[str, Any]:
        """The shadow checks' settings this task sets (`maas.operate.shadow.checks_of`'s
        keywords; the replay's own `alpha` is `self.alpha`), for a rollout's shadow step and
        `maas rollout shadow` alike."""
        return {
            "min_requests": self.min_requests,
            "max_quality_drop": self.max_quality_drop,
            "max_disagreement": self.max_mean_abs_delta,
        }
