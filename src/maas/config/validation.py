"""The validation section of params.yaml and the task files: the suite's rules (ranges,
distributions, nulls, bands) and where it runs (validation.engine, validation.spark_master)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from maas.config.base import ColumnType, Severity, Strict
from maas.config.monitoring import PartitionDriftParams


class RangeRule(Strict):
    column: str
    min: float | None = None
    max: float | None = None
    mostly: float = Field(1.0, gt=0, le=1)
    severity: Severity = "block"

    @model_validator(mode="after")
    def _has_bound(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError(f"range rule for {self.column!r} needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range rule for {self.column!r}: min > max")
        return self


class DistributionRule(Strict):
    """The band a statistic of a column over one partition must lie in. A unit or encoding
    change moves a whole partition: an offset moves its mean, a scale its spread (°C for °F
    does both), where value ranges still hold."""

    column: str
    stat: Literal["mean", "stdev"] = "mean"
    min: float
    max: float
    severity: Severity = "block"

    @model_validator(mode="after")
    def _ordered(self) -> DistributionRule:
        if self.min > self.max:
            raise ValueError(f"{self.stat} rule for {self.column!r}: min > max")
        return self


class NotNullRule(Strict):
    column: str
    mostly: float = Field(1.0, gt=0, le=1)
    severity: Severity = "block"


class BandRule(Strict):
    min: float = Field(ge=0)
    max: float = Field(ge=0)
    severity: Severity = "block"

    @model_validator(mode="after")
    def _ordered(self) -> BandRule:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class ValidationParams(Strict):
    reports_dir: Path = Path("reports/validation")
    columns: dict[str, ColumnType]
    domains: dict[str, list[str]] = {}
    patterns: dict[str, str] = {}
    ranges: list[RangeRule] = []
    distributions: list[DistributionRule] = []  # per partition
    not_null: list[NotNullRule] = []
    row_count: BandRule
    label_rate: BandRule | None = None  # binary: the positive share per partition
    unique_key: list[str] = []
    # clock times written hhmm (1730 = 17:30): a minutes part over 59 blocks (minutes after
    # midnight in an hhmm column)
    clock_times: list[str] = []
    # columns that repeat a part of a clock time, e.g. hour: sched_dep_time.hour (block)
    clock_parts: dict[str, str] = {}
    partition_dates: Severity = "block"
    # each partition against the one before it, per column (Evidently; off without thresholds)
    drift: PartitionDriftParams = Field(
        default_factory=lambda: PartitionDriftParams.model_validate({})
    )
    extra_columns: Severity = "warn"  # columns not declared in `columns` (ignored by training)
    # A partition validated once with this suite is not validated again (null: always)
    cache_dir: Path | None = Path(".maas/validation-cache")
    # where the suite runs: pandas in this process, or spark (GX's Spark datasource) on
    # spark_master (local[N], spark://host:port, yarn, k8s://https://host:port)
    engine: Literal["pandas", "spark"] = "pandas"
    spark_master: str = "local[2]"

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str) -> str:
        if not re.fullmatch(r"local(\[(\d+|\*)(,\d+)?\])?|yarn|(spark|k8s)://\S+", value):
            raise ValueError(
                f"{value!r} is not a Spark master URL: local[N], spark://host:port, yarn or "
                "k8s://https://host:port"
            )
        return value

    @field_validator("clock_parts")
    @classmethod
    def _clock_part(cls, value: dict[str, str]) -> dict[str, str]:
        for column, spec in value.items():
            source, _, unit = spec.rpartition(".")
            if not source or unit not in ("hour", "minute"):
                raise ValueError(f"{column}: write <hhmm column>.hour or .minute, not {spec!r}")
        return value
