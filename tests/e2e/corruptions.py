"""A corpus of bad monthly partitions, made from the real ones: what real feeds deliver.

Each corruption rewrites files in a copy of a raw folder holding 2013-10, 2013-11 (train)
and 2013-12 (test). `outcome` is what maas does with it: `block` (validation stops the run,
naming `expectation` and `column`), `error` (the partition cannot be read or named, the
message says which file) or `warn` (reported; the run goes on, as params.yaml documents).
The README's bad-data table lists the same cases.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TEST, TRAIN = "2013-12", "2013-11"


@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Callable[[Path], None]
    outcome: str  # block | error | warn
    expectation: str  # the expectation (or the error's words) the message must name
    column: str | None = None


def rewrite(month: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(raw: Path) -> None:
        path = raw / f"{month}.parquet"
        change(pd.read_parquet(path)).to_parquet(path, index=False)

    return apply


def some(frame: pd.DataFrame, share: float, seed: int = 0) -> np.ndarray:
    """A boolean mask selecting `share` of the rows (seeded)."""
    return np.random.default_rng(seed).random(len(frame)) < share


def set_where(column: str, share: float, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if value is None:
            frame[column] = frame[column].astype(object)
        frame.loc[some(frame, share), column] = value
        return frame

    return change


def write_bytes(month: str, cut: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(raw: Path) -> None:
        path = raw / f"{month}.parquet"
        path.write_bytes(cut(path.read_bytes()))

    return apply


def copy_month(source: str, target: str) -> Callable[[Path], None]:
    def apply(raw: Path) -> None:
        shutil.copy(raw / f"{source}.parquet", raw / f"{target}.parquet")

    return apply


def extra_file(name: str) -> Callable[[Path], None]:
    def apply(raw: Path) -> None:
        shutil.copy(raw / f"{TEST}.parquet", raw / name)

    return apply


def _distance_as_text(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(distance=f["distance"].astype(str) + " mi")


def _flight_with_a_null(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(flight=f["flight"].astype("float64").where(~some(f, 0.001), np.nan))


def _duplicated(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f[some(f, 0.05)]], ignore_index=True)


def _dates_outside(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(month=np.where(some(f, 0.05), 11, f["month"]))


def _impossible_dates(f: pd.DataFrame) -> pd.DataFrame:  # November has 30 days
    return f.assign(day=np.where(some(f, 0.03), 31, f["day"]))


def _all_late(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(arr_delay=f["arr_delay"] + 120)


def _glitch(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f.loc[f.index[[10, 5000, 20000]], "wind_speed"] = 1048.0  # 3 readings
    return f


def _lowercase_codes(f: pd.DataFrame) -> pd.DataFrame:
    mask = some(f, 0.01)
    return f.assign(dest=np.where(mask, f["dest"].str.lower(), f["dest"]))


CORRUPTIONS = [
    Corruption(
        "missing column (arr_delay dropped)",
        rewrite(TEST, lambda f: f.drop(columns=["arr_delay"])),
        "block",
        "expect_column_to_exist",
        "arr_delay",
    ),
    Corruption(
        "renamed column (dest -> destination)",
        rewrite(TEST, lambda f: f.rename(columns={"dest": "destination"})),
        "block",
        "expect_column_to_exist",
        "dest",
    ),
    Corruption(
        "wrong type (distance as text)",
        rewrite(TEST, _distance_as_text),
        "block",
        "expect_column_values_to_be_in_type_list",
        "distance",
    ),
    Corruption(
        "int column turned float (a null in flight)",
        rewrite(TEST, _flight_with_a_null),
        "block",
        "expect_column_values_to_be_in_type_list",
        "flight",
    ),
    Corruption(
        "null spike (30% of carrier null)",
        rewrite(TEST, set_where("carrier", 0.3, None)),
        "block",
        "expect_column_values_to_not_be_null",
        "carrier",
    ),
    Corruption(
        "values out of range (2% sched_dep_time 3000)",
        rewrite(TEST, set_where("sched_dep_time", 0.02, 3000)),
        "block",
        "expect_column_values_to_be_between",
        "sched_dep_time",
    ),
    Corruption(
        "unknown categories in bulk (40% origin XXX)",
        rewrite(TEST, set_where("origin", 0.4, "XXX")),
        "block",
        "expect_column_values_to_be_in_set",
        "origin",
    ),
    Corruption(
        "malformed codes (1% dest lower-case)",
        rewrite(TEST, _lowercase_codes),
        "block",
        "expect_column_values_to_match_regex",
        "dest",
    ),
    Corruption(
        "duplicated flights (5% delivered twice)",
        rewrite(TEST, _duplicated),
        "block",
        "expect_compound_columns_to_be_unique",
        "year,month,day,carrier,flight,origin",
    ),
    Corruption(
        "empty file (0 bytes)",
        write_bytes(TEST, lambda b: b""),
        "error",
        "is unreadable",
        "2013-12",
    ),
    Corruption(
        "truncated parquet (half the bytes)",
        write_bytes(TEST, lambda b: b[: len(b) // 2]),
        "error",
        "is unreadable",
        "2013-12",
    ),
    Corruption(
        "rows dated outside the month (5% say November)",
        rewrite(TEST, _dates_outside),
        "block",
        "expect_column_values_to_be_in_set",
        "_in_partition",
    ),
    Corruption(
        "impossible dates (November 31st)",
        rewrite(TRAIN, _impossible_dates),
        "block",
        "expect_column_values_to_not_be_null",
        "_time",
    ),
    Corruption(
        "label rate out of band (every flight 2 h late)",
        rewrite(TEST, _all_late),
        "block",
        "expect_column_mean_to_be_between",
        "_label",
    ),
    Corruption(
        "a month re-delivered as another (December = November's file)",
        copy_month(TRAIN, TEST),
        "block",
        "expect_column_values_to_be_in_set",
        "_in_partition",
    ),
    Corruption(
        "zero rows (schema only)",
        rewrite(TEST, lambda f: f.head(0)),
        "block",
        "expect_table_row_count_to_be_between",
        None,
    ),
    Corruption(
        "partial delivery (2,000 of ~28,000 rows)",
        rewrite(TEST, lambda f: f.head(2000)),
        "block",
        "expect_table_row_count_to_be_between",
        None,
    ),
    Corruption(
        "stuck sensor (5% wind_speed 1048 mph)",
        rewrite(TEST, set_where("wind_speed", 0.05, 1048.0)),
        "block",
        "expect_column_values_to_be_between",
        "wind_speed",
    ),
    Corruption(
        "a file not named YYYY-MM.parquet",
        extra_file("december-final.parquet"),
        "error",
        "must be named YYYY-MM.parquet",
        "december-final.parquet",
    ),
    Corruption(
        "temperatures in °C (December's temp converted)",
        rewrite(TEST, lambda f: f.assign(temp=(f["temp"] - 32) * 5 / 9)),
        "block",
        "drift_from_previous_partition",
        "temp",
    ),
    Corruption(
        "extra column (source_system)",
        rewrite(TEST, lambda f: f.assign(source_system="feed-b")),
        "warn",
        "expect_table_columns_to_match_set",
        None,
    ),
    Corruption(
        "sensor glitch in a few rows (3 wind_speed readings 1048 mph)",
        rewrite(TEST, _glitch),
        "warn",
        "expect_column_values_to_be_between",
        "wind_speed",
    ),
]
