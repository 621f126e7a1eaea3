"""The check columns a partition gets before Great Expectations sees it: its month, each row's
date, the label, and the parts of clock times (derived in pandas, checked by the suite)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from maas.config import ValidationParams

# Derived columns added to each batch so GX can check dates and the label rate.
PARTITION_COLUMN = "_partition_month"  # year * 100 + month of every row
DATE_COLUMN = "_flight_date"  # NaT for impossible dates such as 2013-02-30
LABEL_COLUMN = "_delayed"  # 1/0 from arr_delay, NaN when the flight has no arrival


def clock_minutes_column(column: str) -> str:
    """The minutes part of an hhmm clock time (0-59 when it really is hhmm)."""
    return f"_{column}_minutes"


def clock_part_column(column: str) -> str:
    """1 where `column` equals its part of the clock time it repeats, 0 where it does not."""
    return f"_{column}_agrees"


def derived_columns(params: ValidationParams) -> list[str]:
    """The check columns `prepare_batch` adds to a partition."""
    return [PARTITION_COLUMN, DATE_COLUMN, LABEL_COLUMN,
            *map(clock_minutes_column, params.clock_times),
            *map(clock_part_column, params.clock_parts)]  # fmt: skip


def prepare_batch(
    frame: pd.DataFrame, params: ValidationParams, label_threshold: float
) -> pd.DataFrame:
    """Add the derived check columns; string columns become object for GX's type check."""
    batch = frame.copy()
    for column in batch.columns:
        if isinstance(batch[column].dtype, pd.StringDtype):
            batch[column] = batch[column].astype(object)
    if {"year", "month"} <= set(batch.columns):
        year = pd.to_numeric(batch["year"], errors="coerce")
        month = pd.to_numeric(batch["month"], errors="coerce")
        batch[PARTITION_COLUMN] = (year * 100 + month).astype("float64")
        if "day" in batch.columns:
            parts = pd.DataFrame(
                {"year": year, "month": month, "day": pd.to_numeric(batch["day"], errors="coerce")}
            )
            batch[DATE_COLUMN] = pd.to_datetime(parts, errors="coerce")
    if "arr_delay" in batch.columns:
        delay = pd.to_numeric(batch["arr_delay"], errors="coerce")
        batch[LABEL_COLUMN] = np.where(
            delay.isna(), np.nan, (delay >= label_threshold).astype(float)
        )
    add_clock_checks(batch, params)
    return batch


def add_clock_checks(batch: pd.DataFrame, params: ValidationParams) -> None:
    """The minutes part of each hhmm column, and whether each repeated part agrees with it
    (NaN where a value is missing: nulls are the null checks' business)."""
    for column in params.clock_times:
        if column in batch.columns:
            clock = pd.to_numeric(batch[column], errors="coerce").astype("float64")
            batch[clock_minutes_column(column)] = clock % 100
    for column, spec in params.clock_parts.items():
        source, _, unit = spec.rpartition(".")
        if column in batch.columns and source in batch.columns:
            clock = pd.to_numeric(batch[source], errors="coerce").astype("float64")
            part = clock // 100 if unit == "hour" else clock % 100
            value = pd.to_numeric(batch[column], errors="coerce").astype("float64")
            agrees = (value == part).astype("float64")
            batch[clock_part_column(column)] = agrees.where(value.notna() & part.notna())
