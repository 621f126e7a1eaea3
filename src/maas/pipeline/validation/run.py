"""Great Expectations suite built from params.yaml; each expectation is `block` or `warn`.

great_expectations is imported inside the functions that need it (a 3-7 s import), so
nothing else in maas pays for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from maas.config import DataParams, ValidationParams
from maas.errors import DataValidationError
from maas.pipeline.data.partitions import Partition
from maas.pipeline.validation.batch import (
    prepare_batch,
)
from maas.pipeline.validation.cache import ValidationCache
from maas.pipeline.validation.drift import EXPECTATION as DRIFT_EXPECTATION
from maas.pipeline.validation.drift import check_drift
from maas.pipeline.validation.suite import build_expectations

log = logging.getLogger(__name__)

SUITE_NAME = "task_partition"


@dataclass(frozen=True)
class ExpectationOutcome:
    partition: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    error: str | None = None

    def describe(self) -> str:
        where = f" column={self.column}" if self.column else ""
        detail = []
        if self.error:
            detail.append(self.error)
        if self.unexpected_count:
            detail.append(f"{self.unexpected_count} unexpected ({self.unexpected_percent:.3g}%)")
        if self.observed is not None and not self.unexpected_count:
            detail.append(f"observed {self.observed}")
        suffix = f": {'; '.join(detail)}" if detail else ""
        return f"partition {self.partition}: {self.expectation}{where} [{self.severity}]{suffix}"


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


def _outcome(partition: str, result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    error = None
    if result.exception_info and result.exception_info.get("raised_exception"):
        error = str(result.exception_info.get("exception_message", "")).splitlines()[0][:300]
    observed = details.get("observed_value")
    if isinstance(observed, np.generic):
        observed = observed.item()
    if isinstance(observed, float) and not np.isfinite(observed):
        observed = None
    return ExpectationOutcome(
        partition=partition,
        expectation=config.type,
        column=config.kwargs.get("column")
        or (",".join(config.kwargs["column_list"]) if config.kwargs.get("column_list") else None),
        severity=(config.meta or {}).get("severity", "block"),
        success=bool(result.success),
        observed=observed
        if isinstance(observed, (int, float, str, bool)) or observed is None
        else str(observed),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        error=error,
    )


def validate_partitions(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    reports_dir: Path | None = None,
    content_sha256: dict[str, str] | None = None,
) -> ValidationReport:
    """Run the suite once per partition in one GX context; write JSON + Data Docs if asked.

    With `params.cache_dir` and each partition's file sha256 in `content_sha256`, a partition
    already validated with the same suite takes its outcomes from the cache (a nightly run
    checks only the new month; when nothing is new, Great Expectations is not even imported).
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
        fresh = _run_suite(todo, params, data, reports_dir)
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


def _run_suite(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    reports_dir: Path | None,
) -> dict[str, tuple[list[ExpectationOutcome], Any]]:
    """The Great Expectations part: one context, one checkpoint, one run per partition;
    Data Docs (of these partitions) under reports_dir."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    docs_dir = None
    if reports_dir is not None:
        docs_dir = (reports_dir / "data_docs").resolve()
        context.add_data_docs_site(
            site_name="maas",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    asset = context.data_sources.add_pandas("partitions").add_dataframe_asset("partition")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_partition")
    # the whole suite in one store write: adding expectations one by one re-serialises the
    # suite on every add (4.7 s for the flight task's 98 against 0.07 s at once, measured)
    suite = context.suites.add(
        gx.ExpectationSuite(name=SUITE_NAME, expectations=build_expectations(params, data.label))
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="validate_partition", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="partitions", validation_definitions=[definition], result_format="SUMMARY"
        )
    )

    fresh: dict[str, tuple[list[ExpectationOutcome], Any]] = {}
    for partition, frame in frames:
        batch = prepare_batch(frame, params, data, partition)
        result = checkpoint.run(
            batch_parameters={"dataframe": batch},
            run_id=gx.RunIdentifier(run_name=partition.name),
        )
        for suite_result in result.run_results.values():
            outcomes = [_outcome(partition.name, r) for r in suite_result.results]
            fresh[partition.name] = (outcomes, suite_result.to_json_dict())
    if reports_dir is not None:
        context.build_data_docs(site_names=["maas"])
    return fresh


def raise_for_blocking(report: ValidationReport, reports_dir: Path | None = None) -> None:
    if report.blocking:
        raise DataValidationError(report.blocking, reports_dir)
