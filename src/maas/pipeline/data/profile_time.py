"""How `maas task init` orders a table's rows into partitions: by a date column's calendar
period (dates written as digits, 20130105 or 201301, included: maas.pipeline.data.date_codes),
by an integer time column's values (a year 2018, a day number 1..365: an ordered period, never
a date string), or, for a table with no time column, by a reproducible hash of its key
(`data.split: {by: key_hash}`, maas.pipeline.data.key_hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from maas.config import TimeSpec
from maas.config.task_spec import DateCode, Frequency, Partitioning, SplitSpec
from maas.errors import DataError
from maas.pipeline.data import key_hash
from maas.pipeline.data.date_codes import detect_date_code, parse_date_codes
from maas.pipeline.data.partitions import period_names, row_times

MIN_PARTITIONS = 6  # the partition frequency is the coarsest giving at least this many
MAX_NUMBER_PARTITIONS = 30  # an integer time: the smallest span giving at most this many
SPANS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000)
BUCKETS = 10  # a table with no time column: this many hash buckets


@dataclass(frozen=True)
class Ordering:
    """What the task file's data section says about order (`time` or `split`), each row's
    partition, the partitioning's name, and the time spec (None: key_hash)."""

    section: dict[str, Any]
    periods: pd.Series
    partitioning: Partitioning
    time: TimeSpec | None
    split: SplitSpec


def integer_valued(values: pd.Series) -> bool:
    """An integer column, or a float one whose values are all whole (integers with gaps)."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return False
    present = values.dropna().to_numpy(dtype=np.float64)
    return bool(len(present)) and bool(np.all(np.mod(present, 1) == 0))


def choose_span(values: pd.Series) -> int:
    """The smallest of SPANS that leaves at most MAX_NUMBER_PARTITIONS partitions."""
    present = values.dropna()
    for span in SPANS:
        if np.floor(present / span).nunique() <= MAX_NUMBER_PARTITIONS:
            return span
    return SPANS[-1]


def choose_partition(times: pd.Series, asked: Frequency | None) -> Frequency:
    if asked is not None:
        return asked
    for frequency in ("month", "week", "day"):
        if period_names(times, frequency).nunique() >= MIN_PARTITIONS:
            return frequency
    return "day"


def order_rows(
    frame: pd.DataFrame,
    data: Path,
    time: str | None,
    asked: Frequency | Literal["number"] | None,
    keys: tuple[str, ...],
    label: str,
    notes: list[str],
) -> Ordering:
    """The ordering of `frame` (the file `data`) by `time` (--time), or by key hash without
    one; a time column that is not there, or parses neither as dates nor as integers, is one
    line naming the flag."""
    if time is None:
        split = SplitSpec(by="key_hash", buckets=BUCKETS, key=list(keys))
        key_hash.require_keys(frame, split, str(data))
        periods = key_hash.bucket_names(key_hash.row_buckets(frame, split, label), BUCKETS)
        notes.append(f"{key_hash.describe(split)} (data.split)")
        if not keys:
            notes.append(
                "no --key: the hash is over every value of a row, so identical rows land on "
                "the same side (no leakage); --key names a column unique per row"
            )
        return Ordering(split.model_dump(mode="json"), periods, "bucket", None, split)
    if time not in frame.columns:
        raise DataError(
            f"--time {time!r} is not a column of {data} (it has {list(frame.columns)}): name "
            "the column saying when each row happened, or leave --time out for a table "
            "without one (a split by a hash of --key)"
        )
    form = None if asked == "number" else detect_date_code(frame[time])
    if form is not None:
        assert asked != "number"
        return _date_code_ordering(frame, time, form, asked, notes)
    if integer_valued(frame[time]) and asked in (None, "number", "year"):
        span = 1 if asked == "year" else choose_span(frame[time])
        spec = TimeSpec(column=time, partition="number", span=span)
        periods = period_names(row_times(frame, spec), "number", span)
        each = "each value" if span == 1 else f"each {span} values"
        notes.append(
            f"{time} holds integers ({frame[time].min():g} to {frame[time].max():g}): read as "
            f"an ordered period, one partition for {each} (data.time.partition: number, span "
            f"{span}); --partition day|week|month reads it as dates instead"
        )
        return Ordering(_section(spec), periods, "number", spec, SplitSpec(by="time"))
    if asked == "number":
        raise DataError(
            f"--partition number reads an integer time column; {time!r} holds "
            f"{frame[time].dtype} values: leave --partition out or name day|week|month|year"
        )
    spec = TimeSpec(column=time)
    times = row_times(frame, spec)
    if times.isna().all():
        example = frame[time].dropna().astype(str).head(1).tolist()
        raise DataError(
            f"{data}: time column {time!r} does not parse as dates (e.g. "
            f"{example[0] if example else 'empty'!r}): --time names the column of dates"
        )
    if times.isna().any():
        notes.append(f"{int(times.isna().sum())} row(s) have no parseable {time}: left out")
    frequency = choose_partition(times, None if asked == "number" else asked)
    spec = TimeSpec(column=time, partition=frequency)
    return Ordering(
        _section(spec), period_names(times, frequency), frequency, spec, SplitSpec(by="time")
    )


def _date_code_ordering(
    frame: pd.DataFrame, time: str, form: DateCode, asked: Frequency | None, notes: list[str]
) -> Ordering:
    """A time column of dates written as digits (20130105, 201301): read as dates in that
    form (`data.time.format`), partitioned by calendar period; yyyymm by month or year."""
    values = frame[time]
    if form == "yyyymm" and asked in ("day", "week"):
        raise DataError(
            f"--partition {asked}: {time!r} holds months written yyyymm (e.g. "
            f"{values.dropna().iloc[0]}), no days: --partition month or year"
        )
    times = parse_date_codes(values, form)
    frequency = asked or ("month" if form == "yyyymm" else choose_partition(times, None))
    spec = TimeSpec(column=time, partition=frequency, format=form)
    span = f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}"
    each = {"day": "daily"}.get(frequency, f"{frequency}ly")
    notes.append(
        f"{time} holds dates written as digits ({span}): read as dates {form} "
        f"(data.time.format: {form}), {each} partitions (data.time.partition); "
        "--partition number reads them as plain numbers instead"
    )
    if times.isna().any():
        notes.append(f"{int(times.isna().sum())} row(s) have no {time}: left out")
    return Ordering(
        _section(spec), period_names(times, frequency), frequency, spec, SplitSpec(by="time")
    )


def _section(spec: TimeSpec) -> dict[str, Any]:
    section: dict[str, Any] = {"column": spec.column, "partition": spec.partition}
    if spec.partition == "number":
        section["span"] = spec.span
    if spec.format is not None:
        section["format"] = spec.format
    return section
