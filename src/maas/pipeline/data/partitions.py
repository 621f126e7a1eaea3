"""Partitions and rows in time: partition files named by their period, each row's time, the
label the task declares, and the time-ordered splits. A table with no time column is
partitioned into buckets by a key's hash (`maas.pipeline.data.key_hash`). Where partitions
come from is `maas.pipeline.data.sources`."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd

from maas.config import DataParams, LabelSpec, TimeSpec
from maas.config.task_spec import Frequency, Partitioning
from maas.errors import DataError
from maas.pipeline.data import key_hash
from maas.pipeline.data.date_codes import parse_date_codes
from maas.serving.preprocessing import as_category_strings

log = logging.getLogger(__name__)

PARTITION_SUFFIXES = (".parquet", ".csv")
# A partition file's name (without suffix) for each partitioning, and how to read it back.
NAME_PATTERNS: dict[str, tuple[str, re.Pattern[str]]] = {
    "day": ("YYYY-MM-DD", re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")),
    "week": ("YYYY-Www (ISO week)", re.compile(r"^(\d{4})-W(\d{2})$")),
    "month": ("YYYY-MM", re.compile(r"^(\d{4})-(\d{2})$")),
    "year": ("YYYY", re.compile(r"^(\d{4})$")),
    "number": ("N, the period's first value,", re.compile(r"^(-?\d+)$")),
    "bucket": ("hash-NN (the bucket)", re.compile(r"^hash-(\d+)$")),
}
# Where a row lies in the task's order: its time (dates), its value (an integer time) or its
# bucket (key_hash); a partition holds the rows of [start, end).
Position: TypeAlias = pd.Timestamp | float


@dataclass(frozen=True)
class Partition:
    name: str  # "2013-05", "2018" (an integer time), "hash-07" (a bucket)
    path: Path
    start: Position  # the period's first instant (value, bucket)
    end: Position  # the next period's first instant (exclusive)


def period_bounds(
    name: str, partitioning: Partitioning, span: int = 1
) -> tuple[Position, Position]:
    """[start, end) of the period a partition name stands for; ValueError if it is none."""
    shape, pattern = NAME_PATTERNS[partitioning]
    match = pattern.match(name)
    if not match:
        raise ValueError(f"partition files must be named {shape}.parquet (or .csv)")
    numbers = [int(group) for group in match.groups()]
    if partitioning in ("number", "bucket"):
        width = span if partitioning == "number" else 1
        return float(numbers[0]), float(numbers[0] + width)
    if partitioning == "week":
        start = pd.Timestamp(dt.date.fromisocalendar(numbers[0], numbers[1], 1))
        return start, start + pd.Timedelta(days=7)
    if partitioning == "year":
        return pd.Timestamp(numbers[0], 1, 1), pd.Timestamp(numbers[0] + 1, 1, 1)
    if partitioning == "month":
        start = pd.Timestamp(numbers[0], numbers[1], 1)
        return start, start + pd.DateOffset(months=1)
    start = pd.Timestamp(numbers[0], numbers[1], numbers[2])
    return start, start + pd.Timedelta(days=1)


def period_names(times: pd.Series, partitioning: Partitioning, span: int = 1) -> pd.Series:
    """The partition name of each row's time (None where the time is missing); `number`:
    the first value of its span (2018; span 10: 120 for 127)."""
    if partitioning == "number":
        values = pd.to_numeric(times, errors="coerce").astype("float64")
        starts = np.floor(values / span) * span
        names = pd.Series(
            [None if np.isnan(v) else str(int(v)) for v in starts.to_numpy()],
            index=times.index,
            dtype=object,
        )
        return names
    if partitioning == "bucket":
        raise ValueError("bucket names come from the key's hash (maas.pipeline.data.key_hash)")
    if partitioning == "week":
        iso = times.dt.isocalendar()
        names = iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)
    else:
        names = times.dt.strftime({"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[partitioning])
    return names.astype(object).where(times.notna(), None)


def row_positions(frame: pd.DataFrame, data: DataParams) -> pd.Series:
    """Where each row lies in the task's order: its time (`row_times`), or its bucket (a
    table with no time column); NaN/NaT where it has none."""
    if data.time is None:
        return key_hash.row_buckets(frame, data.split, data.label.column)
    return row_times(frame, data.time)


def row_periods(frame: pd.DataFrame, data: DataParams) -> pd.Series:
    """The partition each row belongs to (None where its time or key is missing)."""
    if data.time is None:
        return key_hash.bucket_names(row_positions(frame, data), data.split.buckets)
    return period_names(row_times(frame, data.time), data.time.partition, data.time.span)


def name_order(names: list[str], partitioning: Partitioning, span: int = 1) -> list[str]:
    """Partition names in the task's order (2 before 10 for an integer time)."""
    return sorted(names, key=lambda name: period_bounds(name, partitioning, span)[0])


def served_frequency(data: DataParams) -> Frequency:
    """The period served records are grouped by when they carry no time of their own: the
    task's calendar period, or (an integer time, a table without one) the month they were
    served in."""
    if data.time is not None and data.time.partition != "number":
        return data.time.partition
    return "month"


def task_partitions(data: DataParams) -> list[Partition]:
    """The task's partitions in `data.raw_dir`, in its order."""
    span = data.time.span if data.time is not None else 1
    return list_partitions(data.raw_dir, data.partitioning, span)


def list_partitions(
    raw_dir: Path, frequency: Partitioning = "month", span: int = 1
) -> list[Partition]:
    """Partitions in time order; a file whose name is not a period is an error naming it."""
    if not raw_dir.is_dir():
        return []
    partitions = []
    for path in sorted(p for p in raw_dir.iterdir() if p.suffix in PARTITION_SUFFIXES):
        try:
            start, end = period_bounds(path.stem, frequency, span)
        except ValueError as error:
            setting = "data.split is key_hash" if frequency == "bucket" else "data.time.partition"
            raise DataError(f"{path}: {error}: {setting} is {frequency}") from None
        partitions.append(Partition(path.stem, path, start, end))
    names = [p.name for p in partitions]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{raw_dir}: partitions {twice} exist both as .parquet and .csv")
    return sorted(partitions, key=lambda p: p.start)


def read_partition(partition: Partition) -> pd.DataFrame:
    try:
        if partition.path.suffix == ".csv":
            return pd.read_csv(partition.path)
        return pd.read_parquet(partition.path)
    except Exception as error:  # pyarrow and the CSV parser raise several types
        raise DataError(
            f"partition {partition.name} ({partition.path}) is unreadable: {error}"
        ) from error


def split_partitions(
    partitions: list[Partition], test_partitions: int, max_train_partitions: int | None
) -> tuple[list[Partition], list[Partition]]:
    """The newest `test_partitions` are the test set; the ones before them train."""
    if len(partitions) <= test_partitions:
        names = [p.name for p in partitions]
        raise DataError(
            f"need more than {test_partitions} partition(s) to train and test, found {names}"
        )
    train, test = partitions[:-test_partitions], partitions[-test_partitions:]
    if max_train_partitions is not None:
        train = train[-max_train_partitions:]
    return train, test


def row_times(frame: pd.DataFrame, time: TimeSpec) -> pd.Series:
    """Each row's time as naive datetime64 (UTC when the column carries a zone); NaT where it
    does not parse (an impossible date such as 2013-02-30 included). Dates written as digits
    (`format`: 20130105, 201301) are read in that form only. An integer time (`partition:
    number`) is its value as float, NaN where it is missing or not a number."""
    missing = [column for column in time.columns if column not in frame.columns]
    if missing:
        raise DataError(f"time column(s) {missing} not in the data (task: data.time)")
    if time.partition == "number":
        assert time.column is not None
        values = pd.to_numeric(frame[time.column], errors="coerce").astype("float64")
        return values.where(np.isfinite(values))
    if time.column is not None and time.format is not None:
        return parse_date_codes(frame[time.column], time.format)
    if time.column is not None:
        values = frame[time.column]
        if pd.api.types.is_datetime64_any_dtype(values):
            times = values
        else:
            times = pd.to_datetime(
                values.astype("string"), errors="coerce", utc=True, format="mixed"
            )
        if getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        return pd.Series(times, index=frame.index).astype("datetime64[ns]")
    parts = time.parts
    assert parts is not None
    numbers = {
        key: pd.to_numeric(frame[column], errors="coerce")
        for key, column in (("year", parts.year), ("month", parts.month), ("day", parts.day))
    }
    times = pd.to_datetime(pd.DataFrame(numbers), errors="coerce")
    if parts.clock is not None:
        clock = pd.to_numeric(frame[parts.clock], errors="coerce")
        minutes = (clock // 100) * 60 + clock % 100
        times = times + pd.to_timedelta(minutes.fillna(0), unit="min")
    return times.astype("datetime64[ns]")


def iso_time_text(frame: pd.DataFrame, time: TimeSpec | None) -> pd.DataFrame:
    """`frame` with the values of a text time column that are no ISO 8601 date ("5/31/1990
    0:00:00", "31 May 1990") rewritten in ISO 8601 as `row_times` read them (UTC): requests
    send dates in ISO 8601, and the date features read that form only
    (`maas.serving.derive.as_datetime`), so the partitions hold what a client sends and the
    features see the dates. ISO values, datetime columns, digit dates and numbers are kept."""
    if time is None or time.column is None or time.format is not None:
        return frame
    values = frame[time.column]
    if time.partition == "number" or not (
        pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)
    ):
        return frame
    from maas.serving.derive import as_datetime

    unread = np.isnat(as_datetime(values.to_numpy(dtype=object)))
    parsed = row_times(frame, time)
    rewrite = unread & parsed.notna().to_numpy()
    if not rewrite.any():
        return frame
    column = values.astype(object).copy()
    column[rewrite] = parsed[rewrite].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return frame.assign(**{time.column: column})


def label_values(frame: pd.DataFrame, label: LabelSpec) -> np.ndarray:
    """The label of each row as float (binary: 1/0; multiclass: the index of its class in
    `classes`; regression: the value), NaN where the row has none or (multiclass) a value
    outside the classes, which validation blocks."""
    if label.column not in frame.columns:
        raise DataError(f"label column {label.column!r} is not in the data (task: data.label)")
    raw = frame[label.column]
    if label.threshold is not None or label.kind == "regression":
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        if label.kind == "regression":
            return np.where(np.isfinite(values), values, np.nan)
        assert label.threshold is not None
        return np.where(np.isnan(values), np.nan, (values >= label.threshold).astype(float))
    strings = as_category_strings(raw.to_numpy())
    if label.kind == "multiclass":
        index = {name: float(i) for i, name in enumerate(label.classes)}
        return np.array([index.get(s, np.nan) for s in strings], dtype=np.float64)
    positive = str(as_category_strings(np.asarray([label.positive]))[0])
    return np.where(strings == "", np.nan, (strings == positive).astype(float))


def counted_labels(frame: pd.DataFrame, label: LabelSpec) -> np.ndarray:
    """The label each row counts as wherever a label is scored (training, the gate, realized
    quality): `label_values`, with the task's rule for rows without one applied (binary
    `unlabeled: positive`: positive; `drop`: NaN, left out)."""
    values = label_values(frame, label)
    return np.where(np.isnan(values), 1.0, values) if label.unlabeled == "positive" else values


def add_label(frame: pd.DataFrame, label: LabelSpec) -> pd.DataFrame:
    """Add `label`; rows without one are dropped or (binary, `unlabeled: positive`) positive.
    Classes are small integers (int8, int16 past 127 classes); a regression label is float."""
    values = counted_labels(frame, label)
    missing = np.isnan(values)
    dtype = {
        "binary": "int8",
        "multiclass": "int8" if len(label.classes) <= 127 else "int16",
        "regression": "float64",
    }[label.kind]
    frame = frame.loc[~missing].copy()
    frame["label"] = values[~missing].astype(dtype)
    return frame


def sort_by_time(frame: pd.DataFrame, time: TimeSpec | None) -> pd.DataFrame:
    """Rows in time order (stable: rows of the same instant keep their order). Without a time
    (key_hash) the order is the frame's: its buckets in order, as the windows hold them."""
    if time is None:
        return frame.reset_index(drop=True)
    order = np.argsort(row_times(frame, time).to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def split_latest(
    frame: pd.DataFrame, fraction: float, time: TimeSpec | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier, latest) where `latest` is the last `fraction` of time-ordered rows (no time:
    the last rows of the newest buckets, a slice the hash chose)."""
    ordered = sort_by_time(frame, time)
    cut = round(len(ordered) * (1 - fraction))
    if cut <= 0 or cut >= len(ordered):
        raise DataError(f"cannot split {len(ordered)} rows with validation_fraction={fraction}")
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
