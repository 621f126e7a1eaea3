"""The check columns a partition gets before Great Expectations sees it: each row's time and
whether it lies in the partition's period (a table with no time column: its key's bucket and
whether that is the partition's), the label by the task's rule, and the parts of clock times
(derived in pandas, checked by the suite)."""

from __future__ import annotations

import pandas as pd

from maas.config import DataParams, ValidationParams
from maas.pipeline.data.partitions import Partition, label_values, row_positions

# Derived columns added to each batch so GX can check dates and the label rate.
PARTITION_COLUMN = "_in_partition"  # 1 when the row's time lies in the partition's period
DATE_COLUMN = "_time"  # the row's time (bucket); NaT where it does not parse (2013-02-30)
LABEL_COLUMN = "_label"  # the task's label (binary: 1/0), NaN where the row has none


def clock_minutes_column(column: str) -> str:
    """The minutes part of an hhmm clock time (0-59 when it really is hhmm)."""
    return f"_{column}_minutes"


def clock_part_column(column: str) -> str:
    """1 where `column` equals its part of the clock time it repeats, 0 where it does not."""
    return f"_{column}_agrees"


def derived_columns(params: ValidationParams) -> list[str]:
    """The check columns `prepare_batch` adds to a partition."""
    return [
        PARTITION_COLUMN,
        DATE_COLUMN,
        LABEL_COLUMN,
        *map(clock_minutes_column, params.clock_times),
        *map(clock_part_column, params.clock_parts),
    ]


def prepare_batch(
    frame: pd.DataFrame, params: ValidationParams, data: DataParams, partition: Partition
) -> pd.DataFrame:
    """Add the derived check columns; string columns become object for GX's type check. A
    time or label column the partition lacks is left to the suite's column checks."""
    batch = frame.copy()
    for column in batch.columns:
        if isinstance(batch[column].dtype, pd.StringDtype):
            batch[column] = batch[column].astype(object)
    needed = data.time_columns if data.time is not None else data.split.key
    if set(needed) <= set(batch.columns):
        times = row_positions(batch, data)
        batch[DATE_COLUMN] = times
        inside = (times >= partition.start) & (times < partition.end)
        batch[PARTITION_COLUMN] = inside.astype("float64").where(times.notna())
    if data.label.column in batch.columns:
        batch[LABEL_COLUMN] = label_values(batch, data.label)
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
