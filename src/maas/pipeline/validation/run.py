"""Great Expectations suite built from params.yaml; each expectation is `block` or `warn`.

great_expectations is imported inside the functions that need it (a 3-7 s import), so
nothing else in maas pays for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from maas.config import DataParams, ValidationParams
from maas.errors import DataValidationError
from maas.pipeline.data.partitions import Partition
from maas.pipeline.validation.batch import (
    prepare_batch,
)
from maas.pipeline.validation.cache import ValidationCache
from maas.pipeline.validation.context import ResultFormat, add_checkpoint, gx_context
from maas.pipeline.validation.drift import EXPECTATION as DRIFT_EXPECTATION
from maas.pipeline.validation.drift import check_drift
from maas.pipeline.validation.outcome import ExpectationOutcome, outcome_of, passed_outcome
from maas.pipeline.validation.screen import (
    SCREEN_ROWS,
    chunks,
    processing_order,
    raised,
    screened,
    stack,
)
from maas.pipeline.validation.suite import build_expectations

__all__ = ["ExpectationOutcome", "ValidationReport", "raise_for_blocking", "validate_partitions"]

log = logging.getLogger(__name__)

SUITE_NAME = "task_partition"


@dataclass
class ValidationReport:
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)  # outcomes from an earlier run

    @property
    def blocking(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "block"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warn"]

    @property
    def status(self) -> str:
        if self.blocking:
            return "failed"
        return "passed_with_warnings" if self.warnings else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "partitions": self.partitions,
            "cached_partitions": self.cached,
            "expectations": len(self.outcomes),
            "blocking_failures": [asdict(o) for o in self.blocking],
            "warnings": [asdict(o) for o in self.warnings],
            "outcomes": [asdict(o) for o in self.outcomes],
        }

    def to_markdown(self) -> str:
        lines = [
            f"**Validation: {self.status}** over {len(self.partitions)} partition(s), "
            f"{len(self.outcomes)} expectation results"
        ]
        drift = [o for o in self.outcomes if o.expectation == DRIFT_EXPECTATION]
        if drift:
            lines.append(
                f"Drift against the partition before (validation.drift): "
                f"{len({o.partition for o in drift})} partition(s) scored, "
                f"{sum(not o.success for o in drift)} column(s) over their threshold"
            )
        for outcome in self.blocking + self.warnings:
            lines.append(f"- {outcome.describe()}")
        return "\n".join(lines)


def validate_partitions(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    reports_dir: Path | None = None,
    content_sha256: dict[str, str] | None = None,
    *,
    screen: bool = True,
) -> ValidationReport:
    """Run the suite once per partition in one GX context; write JSON + Data Docs if asked.

    With `params.cache_dir` and each partition's file sha256 in `content_sha256`, a partition
    already validated with the same suite takes its outcomes from the cache (a nightly run
    checks only the new month; when nothing is new, Great Expectations is not even imported).
    With `screen` (and two new partitions or more), the row-wise expectations run once on all
    new partitions together first (screen.py); the outcomes are the same as without.
    Does not raise on failures: callers decide (see `raise_for_blocking`).
    """
    report = ValidationReport()
    raw_results: dict[str, Any] = {}
    by_name: dict[str, list[ExpectationOutcome]] = {}
    cache = None
    if params.cache_dir is not None and content_sha256:
        cache = ValidationCache(params, data, content_sha256)
        for partition, _ in frames:
            cached = cache.get(partition.name)
            if cached is None:
                continue
            try:
                by_name[partition.name] = [ExpectationOutcome(**o) for o in cached[0]]
            except TypeError as error:  # an entry of another format: validate again
                log.warning("ignoring validation cache entry of %s: %s", partition.name, error)
                continue
            raw_results[partition.name] = cached[1]
            report.cached.append(partition.name)
    todo = [(p, f) for p, f in frames if p.name not in by_name]
    if todo:
        fresh, screens = _run_suite(todo, params, data, reports_dir, screen)
        raw_results.update(screens)
        for name, (outcomes, result) in fresh.items():
            by_name[name], raw_results[name] = outcomes, result
            if cache is not None:
                cache.put(name, [asdict(o) for o in outcomes], result)
    drifts = check_drift(frames, params, data, content_sha256, reports_dir)
    for partition, _ in frames:
        report.outcomes += by_name[partition.name]
        report.outcomes += [ExpectationOutcome(**o) for o in drifts.get(partition.name, [])]
        report.partitions.append(partition.name)
    if reports_dir is not None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        (reports_dir / "summary.json").write_text(
            json.dumps(report.to_dict(), indent=1, default=str)
        )
        (reports_dir / "gx_results.json").write_text(json.dumps(raw_results, indent=1, default=str))
    return report


class SuiteRun(NamedTuple):
    fresh: dict[str, tuple[list[ExpectationOutcome], Any]]  # partition: outcomes, GX result
    screens: dict[str, Any]  # the screen's run name: its GX result (none without a screen)


def _run_suite(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    reports_dir: Path | None,
    screen: bool = True,
) -> SuiteRun:
    """The Great Expectations part: one context; per chunk of partitions (at most SCREEN_ROWS
    rows together), the screen on the chunk's partitions together (two or more), then one run
    per partition of the expectations it did not pass; Data Docs (of these runs) under
    reports_dir. validation.engine spark: the whole suite per partition on Spark instead."""
    if params.engine == "spark":  # the whole suite per partition, no screen (spark.py)
        from maas.pipeline.validation.spark import run_suite_on_spark

        return SuiteRun(run_suite_on_spark(frames, params, data, reports_dir), {})
    import great_expectations as gx

    context = gx_context(reports_dir)
    asset = context.data_sources.add_pandas("partitions").add_dataframe_asset("partition")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_partition")

    def checkpoint(
        name: str, indices: list[int], result_format: ResultFormat
    ) -> tuple[Any, list[str]]:
        """A checkpoint of the suite's expectations at `indices`, and their ids in that order."""
        fresh_copies = build_expectations(params, data.label)  # an expectation joins one suite
        chosen = [fresh_copies[i] for i in indices]
        point, suite = add_checkpoint(context, batch_definition, name, chosen, result_format)
        return point, [str(e.id) for e in suite.expectations]

    def run(point: Any, batch: pd.DataFrame, run_name: str) -> Any:
        result = point.run(
            batch_parameters={"dataframe": batch}, run_id=gx.RunIdentifier(run_name=run_name)
        )
        (suite_result,) = result.run_results.values()
        return suite_result

    expectations = build_expectations(params, data.label)
    everything = list(range(len(expectations)))
    order = processing_order(expectations)
    points: dict[tuple[int, ...], tuple[Any, list[str]]] = {}  # the rest's checkpoints

    def rest_point(rest: list[int]) -> tuple[Any, list[str]]:
        if tuple(rest) not in points:
            points[tuple(rest)] = checkpoint(f"{SUITE_NAME}_{len(points)}", rest, "SUMMARY")
        return points[tuple(rest)]

    screens: dict[str, Any] = {}
    fresh: dict[str, tuple[list[ExpectationOutcome], Any]] = {}
    whole: Any = None
    # a chunk of partitions at a time: its batches and their stack are what memory holds
    for chunk in chunks(frames, SCREEN_ROWS if screen else 0):
        names = [partition.name for partition, _ in chunk]
        batches = [prepare_batch(frame, params, data, p) for p, frame in chunk]
        passed: set[int] = set()
        if len(chunk) > 1:
            stacked = stack(batches)
            candidates = screened(expectations, batches, stacked)
            if candidates:
                point, ids = checkpoint(
                    f"{SUITE_NAME}_screen_{len(screens)}", candidates, "BOOLEAN_ONLY"
                )
                run_name = f"screen: {names[0]}..{names[-1]}"
                suite_result = run(point, stacked, run_name)
                by_id = dict(zip(ids, candidates, strict=True))
                passed = {
                    by_id[r.expectation_config.id]
                    for r in suite_result.results
                    if r.success and not raised(r)
                }
                screens[run_name] = suite_result.to_json_dict()
            del stacked
        rest = [i for i in everything if i not in passed]
        point, ids = rest_point(rest)
        position = {id_: i for id_, i in zip(ids, rest, strict=True)}
        rest_order = [rest[i] for i in processing_order([expectations[i] for i in rest])]
        for name, batch in zip(names, batches, strict=True):
            suite_result = run(point, batch, name)
            results = suite_result.results
            if not passed:
                outcomes = [outcome_of(name, r) for r in results]
            elif (
                any(raised(r) for r in results)
                or [position[r.expectation_config.id] for r in results] != rest_order
            ):
                # an exception puts its result first: the whole suite shows where (rare: a
                # partition without a column, say)
                if whole is None:
                    whole = checkpoint(f"{SUITE_NAME}_whole", everything, "SUMMARY")[0]
                suite_result = run(whole, batch, f"{name} (whole suite)")
                outcomes = [outcome_of(name, r) for r in suite_result.results]
            else:
                by_index = {position[r.expectation_config.id]: outcome_of(name, r) for r in results}
                for i in passed:
                    by_index[i] = passed_outcome(name, expectations[i].configuration, batch)
                outcomes = [by_index[i] for i in order]
            fresh[name] = (outcomes, suite_result.to_json_dict())
        del batches
    if reports_dir is not None:
        context.build_data_docs(site_names=["maas"])
    return SuiteRun(fresh, screens)


def raise_for_blocking(report: ValidationReport, reports_dir: Path | None = None) -> None:
    if report.blocking:
        raise DataValidationError(report.blocking, reports_dir)
