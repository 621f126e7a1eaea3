"""The split of a table with no time column (`data.split: {by: key_hash}`): each row goes to
one of `buckets` buckets by the sha256 of its key's values, so a row lands in the same bucket
on every run, in every process and on every machine (never Python's salted `hash()`). The
buckets play the partitions' role: `hash-00` .. `hash-09` are partition files, the last ones
the test window, and drift compares each bucket with the one before.

Without a key (`data.split.key` empty) the hash is over every value of the row but the
label's, columns in name order: identical rows then land on the same side, so a duplicated
row never sits in both training and test.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from maas.config.task_spec import SplitSpec
from maas.errors import DataError
from maas.serving.preprocessing import as_category_strings

PREFIX = "hash-"  # a bucket's partition name: hash-07 (the test window names it so)
SEPARATOR = "\x1f"  # between a row's values (the ASCII unit separator: never in real text)


def hashed_columns(frame: pd.DataFrame, split: SplitSpec, label: str) -> list[str]:
    """The columns a row's bucket is computed from: the key, else every column but the label
    (sorted by name: a reordered file keeps its buckets)."""
    if split.key:
        missing = [column for column in split.key if column not in frame.columns]
        if missing:
            raise DataError(f"key column(s) {missing} not in the data (task: data.split.key)")
        return list(split.key)
    return sorted(str(column) for column in frame.columns if column != label)


def missing_keys(frame: pd.DataFrame, split: SplitSpec) -> dict[str, int]:
    """Rows without a value, per key column (a key_hash split needs one on every row)."""
    counts = {column: int(frame[column].isna().sum()) for column in split.key}
    return {column: count for column, count in counts.items() if count}


def require_keys(frame: pd.DataFrame, split: SplitSpec, where: str) -> None:
    """One line naming the key columns with missing values, and the flag that fixes it."""
    gaps = missing_keys(frame, split)
    if gaps:
        named = ", ".join(f"{column!r} ({count:,} rows)" for column, count in gaps.items())
        raise DataError(
            f"{where}: key column(s) {named} have missing values: a row without a key has no "
            "bucket; --key names columns with a value on every row (none: every value of "
            "the row is hashed)"
        )


def row_buckets(frame: pd.DataFrame, split: SplitSpec, label: str) -> pd.Series:
    """Each row's bucket (0 .. buckets-1, as float; NaN where a key value is missing). Values
    are read as text as categories are (2, 2.0 and "2" are one key)."""
    columns = hashed_columns(frame, split, label)
    texts = [as_category_strings(frame[column].to_numpy()) for column in columns]
    rows = [SEPARATOR.join(values) for values in zip(*texts, strict=True)] if texts else []
    buckets = np.array(
        [
            int.from_bytes(hashlib.sha256(row.encode()).digest()[:8], "big") % split.buckets
            for row in rows
        ],
        dtype=np.float64,
    )
    if split.key:
        absent = frame[list(split.key)].isna().any(axis=1).to_numpy()
        buckets = np.where(absent, np.nan, buckets)
    return pd.Series(buckets, index=frame.index, dtype="float64")


def bucket_name(index: int, buckets: int) -> str:
    """hash-07 (zero-padded to the widest bucket number: names sort as buckets do)."""
    return f"{PREFIX}{index:0{len(str(buckets - 1))}d}"


def bucket_names(buckets: pd.Series, count: int) -> pd.Series:
    """Each row's bucket name (None where it has no bucket)."""
    names = [None if np.isnan(b) else bucket_name(int(b), count) for b in buckets.to_numpy()]
    return pd.Series(names, index=buckets.index, dtype=object)


def describe(split: SplitSpec) -> str:
    """The split in words, as the task file's comment and the run's log say it."""
    what = f"its key {split.key}" if split.key else "all its values but the label's"
    return (
        f"no time column: each row goes to one of {split.buckets} buckets by a sha256 of "
        f"{what} (the same on every run); the last bucket(s) are the test window"
    )
