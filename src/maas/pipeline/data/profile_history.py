"""What `maas task init` proposes from a table's own history: per-partition distribution bands
and drift thresholds that the partitions already seen pass (documented in docs/pipeline.md)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd

from maas.config.base import CATEGORY_TYPES
from maas.config.monitoring import PartitionDriftParams

DRIFT_PAIRS = 12  # drift thresholds come from the newest this many partition pairs


def rounded(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return float(value)
    digits = 3 - math.floor(math.log10(abs(value)))
    return float(round(value, max(digits, 0)))


def distribution_bands(
    frame: pd.DataFrame, columns: list[str], periods: pd.Series
) -> list[dict[str, Any]]:
    """Per-partition mean and standard deviation bands of numeric columns (at most half
    missing), from the partitions' own spread: means within half their range plus a quarter
    of the column's standard deviation, deviations within half to one and a half times."""
    bands: list[dict[str, Any]] = []
    if periods.nunique() < 2:
        return bands
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().mean() > 0.5 or values.std() == 0:
            continue
        grouped = values.groupby(periods.to_numpy())
        means, stdevs = grouped.mean().dropna(), grouped.std().dropna()
        pad = 0.5 * (means.max() - means.min()) + 0.25 * values.std()
        bands += [
            {
                "column": column,
                "stat": "mean",
                "min": rounded(means.min() - pad),
                "max": rounded(means.max() + pad),
                "severity": "warn",
            },
            {
                "column": column,
                "stat": "stdev",
                "min": rounded(0.5 * stdevs.min()),
                "max": rounded(1.5 * stdevs.max()),
                "severity": "warn",
            },
        ]
    return bands


def drift_thresholds(
    frame: pd.DataFrame, inputs: list[str], columns: dict[str, str], periods: pd.Series
) -> dict[str, float]:
    """Per input column, 1.5 times the largest Evidently drift score between consecutive
    partitions (the newest DRIFT_PAIRS pairs), at least 0.1: what the history moves passes, a
    unit change (several times farther) does not. Columns derived at serving time are not in
    the file and are left out."""
    from maas.pipeline.data import shift

    rule = PartitionDriftParams.model_validate({})  # the methods validation.drift scores with
    names = sorted(periods.dropna().unique())[-(DRIFT_PAIRS + 1) :]
    present = [c for c in inputs if c in frame.columns]
    if len(names) < 2 or not present:
        return {}
    numeric = [c for c in present if columns.get(c) not in CATEGORY_TYPES]
    categorical = [c for c in present if columns.get(c) in CATEGORY_TYPES]
    highest: dict[str, float] = {}
    for before, after in itertools.pairwise(names):
        sides = [frame.loc[(periods == name).to_numpy(), present] for name in (before, after)]
        try:
            scored = shift.compare(
                sides[0],
                sides[1],
                numeric,
                categorical,
                drift_share=1.0,
                methods=(rule.num_method, rule.cat_method),
            )
        except ValueError:  # nothing comparable in this pair
            continue
        for column, result in scored.columns.items():
            highest[column] = max(highest.get(column, 0.0), float(result["score"]))
    return {c: max(0.1, rounded(1.5 * score)) for c, score in highest.items()}
