"""One expectation's outcome on one partition, as summary.json, the validation cache and the
report keep it: read from a Great Expectations result, or written for a row-wise expectation
the screen (screen.py) found without an unexpected row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NOT_NULL = "expect_column_values_to_not_be_null"


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


def _where(config: Any) -> tuple[str | None, str]:
    """The outcome's column (or column list) and severity, from an expectation's config."""
    column = config.kwargs.get("column") or (
        ",".join(config.kwargs["column_list"]) if config.kwargs.get("column_list") else None
    )
    return column, (config.meta or {}).get("severity", "block")


def outcome_of(partition: str, result: Any) -> ExpectationOutcome:
    """The outcome of a Great Expectations result (result_format SUMMARY)."""
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
    column, severity = _where(config)
    return ExpectationOutcome(
        partition=partition,
        expectation=config.type,
        column=column,
        severity=severity,
        success=bool(result.success),
        observed=observed
        if isinstance(observed, (int, float, str, bool)) or observed is None
        else str(observed),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        error=error,
    )


def passed_outcome(partition: str, config: Any, batch: pd.DataFrame) -> ExpectationOutcome:
    """What SUMMARY reports for a column map expectation with no unexpected row in `batch`
    (GX 1.x `ColumnMapExpectation._validate` and `_format_map_output`): success, 0 unexpected,
    and 0 % of the rows it judged: every row for the null check, the non-null ones for the
    others; no percentage (None) where it judged none."""
    column, severity = _where(config)
    rows = len(batch)
    judged = rows if config.type == NOT_NULL else rows - int(batch[column].isnull().sum())
    return ExpectationOutcome(
        partition=partition,
        expectation=config.type,
        column=column,
        severity=severity,
        success=True,
        observed=None,
        unexpected_count=0,
        unexpected_percent=0.0 if rows > 0 and judged > 0 else None,
        error=None,
    )
