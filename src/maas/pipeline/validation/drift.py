"""validation.drift: each partition against the one before it, before anything trains on it.

Evidently scores every column named in `validation.drift.thresholds` (a normed Wasserstein
distance for numbers, Jensen-Shannon for strings, by default); a score above the column's
threshold is a failed outcome like any expectation's, with the rule's severity, so a
`block` stops the run and the gate sees it. Months move a column too (the weather of a
season), so the thresholds are per column and set above what the history moves: the
flight-delay task's were measured over 2013 (docs/pipeline.md).

Outcomes are cached like the suite's, keyed by both partitions' bytes: a nightly run scores
only the new partition against its predecessor.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import DataParams, ValidationParams
from maas.config.base import CATEGORY_TYPES
from maas.pipeline.data.partitions import Partition
from maas.pipeline.validation.cache import ValidationCache

log = logging.getLogger(__name__)

EXPECTATION = "drift_from_previous_partition"
FIELDS = {"partition", "expectation", "column", "severity", "success", "observed"}  # an outcome's
CACHE_SUFFIX = "-drift"  # cache entries `<partition>-drift-<pair digest>-<suite digest>.json`


def check_drift(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    content_sha256: dict[str, str] | None = None,
    reports_dir: Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Outcomes (as ExpectationOutcome fields) per partition that has a predecessor in
    `frames` (in time order), from the cache where it has them. Writes
    `drift/<partition>.json` (scores, thresholds) under reports_dir, and Evidently's HTML
    report beside it for a partition with a failed column."""
    rule = params.drift
    if reports_dir is not None and (reports_dir / "drift").is_dir():  # only this run's reports
        for old in (reports_dir / "drift").glob("*.*"):
            old.unlink()
    if not rule.thresholds or len(frames) < 2:
        return {}
    pairs = list(itertools.pairwise(frames))
    settings = rule.model_dump_json() + version("evidently")  # a new Evidently scores again
    digests = {
        partition.name + CACHE_SUFFIX: _pair_digest(
            content_sha256, before.name, partition.name, settings
        )
        for (before, _), (partition, _) in pairs
    }
    cache = None
    if params.cache_dir is not None and content_sha256:
        cache = ValidationCache(params, data, {k: v for k, v in digests.items() if v})
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for (before, reference), (partition, current) in pairs:
        key = partition.name + CACHE_SUFFIX
        hit = _cached(cache, key)
        # Evidently's report of a failed partition is kept beside its cache entry
        html_file = cache.path(key) if cache is not None else None
        html_file = html_file.with_suffix(".html") if html_file is not None else None
        if hit is not None:
            outcomes[partition.name], summary = hit
            html = html_file.read_text() if html_file is not None and html_file.is_file() else ""
        else:
            outcomes[partition.name], summary, html = _score(
                before.name, reference, partition.name, current, params
            )
            if cache is not None:
                cache.put(key, outcomes[partition.name], summary)
                if html and html_file is not None:
                    with contextlib.suppress(OSError):  # only the report would be missing
                        html_file.write_text(html)
        if reports_dir is not None and html:
            _folder(reports_dir).joinpath(f"{partition.name}.html").write_text(html)
        if reports_dir is not None:
            _folder(reports_dir).joinpath(f"{partition.name}.json").write_text(
                json.dumps(summary, indent=1)
            )
    return outcomes


def _score(
    before: str,
    reference: pd.DataFrame,
    partition: str,
    current: pd.DataFrame,
    params: ValidationParams,
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """One Evidently report of `current` against `reference` over the rule's columns: the
    outcomes, a summary, and the HTML report when a column failed ('' otherwise)."""
    from maas.pipeline.data import shift

    rule = params.drift
    columns = list(rule.thresholds)
    numeric = [c for c in columns if params.columns.get(c) not in CATEGORY_TYPES]
    categorical = [c for c in columns if params.columns.get(c) in CATEGORY_TYPES]
    sample = [
        _sample(frame, columns, rule.sample_rows, rule.seed) for frame in (reference, current)
    ]
    try:
        result = shift.compare(
            sample[0],
            sample[1],
            numeric,
            categorical,
            drift_share=1.0,
            methods=(rule.num_method, rule.cat_method),
            thresholds=rule.thresholds,
        )
    except ValueError as error:  # no column has values on both sides
        result = None
        log.warning("drift of %s against %s not scored: %s", partition, before, error)
    outcomes = []
    for column in columns:
        scored = result.columns.get(column) if result is not None else None
        skipped = result.skipped.get(column) if result is not None else "nothing to compare"
        outcomes.append(
            {
                "partition": partition,
                "expectation": EXPECTATION,
                "column": column,
                "severity": rule.severity,
                "success": scored is None or not scored.get("drifted", False),
                "observed": _observed(scored, rule.thresholds[column], before, skipped),
            }
        )
    summary = {
        "partition": partition,
        "against": before,
        "methods": {"numeric": rule.num_method, "categorical": rule.cat_method},
        "columns": result.columns if result is not None else {},
        "skipped": result.skipped if result is not None else {},
        "failed": [o["column"] for o in outcomes if not o["success"]],
    }
    html = result.html if result is not None and summary["failed"] else ""
    return outcomes, summary, html


def _cached(
    cache: ValidationCache | None, key: str
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A cache entry written by this module (one of another shape is scored again)."""
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        return None
    outcomes, summary = hit
    if not isinstance(summary, dict) or not all(
        isinstance(o, dict) and set(o) == FIELDS for o in outcomes
    ):
        log.warning("ignoring drift cache entry %s: not this version's", key)
        return None
    return outcomes, summary


def _observed(scored: dict[str, Any] | None, threshold: float, before: str, skipped: Any) -> str:
    if scored is None:
        return f"not scored against {before}: {skipped or 'no values'}"
    return (
        f"{scored.get('method')} {scored['score']:.4g} against {before} (threshold {threshold:g})"
    )


def _sample(frame: pd.DataFrame, columns: list[str], rows: int, seed: int) -> pd.DataFrame:
    present = frame[[c for c in columns if c in frame.columns]]
    return present.sample(rows, random_state=seed) if len(present) > rows else present


def _pair_digest(
    content_sha256: dict[str, str] | None, before: str, partition: str, settings: str
) -> str:
    """Both partitions' bytes and the rule's settings (empty when either partition's bytes
    are unknown: not cached)."""
    shas = [(content_sha256 or {}).get(name) for name in (before, partition)]
    if not all(shas):
        return ""
    return hashlib.sha256(f"{shas[0]}:{shas[1]}:{settings}".encode()).hexdigest()


def _folder(reports_dir: Path) -> Path:
    folder = reports_dir / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
