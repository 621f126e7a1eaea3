"""Small corruptions of a synthetic partition, each with the expectation that must catch it
(shared by the validation tests and the benchmark baseline's test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from maas.pipeline.data.partitions import Partition, period_bounds
from maas.pipeline.validation.run import validate_partitions

JAN = Partition("2013-01", Path("2013-01.parquet"), *period_bounds("2013-01", "month"))


def run(frame: pd.DataFrame, params, partition: Partition = JAN, reports: Path | None = None):
    return validate_partitions([(partition, frame)], params.validation, params.data, reports)


def failed(report) -> set[tuple[str, str | None, str]]:
    return {(o.expectation, o.column, o.severity) for o in report.outcomes if not o.success}


def drop_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=["dest"])


def wrong_type(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(distance=f["distance"].astype(str))


def unknown_carrier(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(carrier=["XX"] * 10 + f["carrier"].tolist()[10:])


def bad_dest_code(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(dest=["boston"] + f["dest"].tolist()[1:])


def month_out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(distance=[-5] + f["distance"].tolist()[1:])


def null_carrier(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(carrier=[None] + f["carrier"].tolist()[1:])


def duplicated_flight(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[:1]], ignore_index=True)


def wrong_month(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(month=[2] + f["month"].tolist()[1:])


def impossible_date(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(month=2, day=[30] + f["day"].tolist()[1:])


def all_delayed(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(arr_delay=120.0)


def too_few_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[:50]


def wind_sensor_error(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(wind_speed=[1048.36] + f["wind_speed"].tolist()[1:])


def minutes_after_midnight(f: pd.DataFrame) -> pd.DataFrame:
    """sched_dep_time in minutes after midnight (17:30 -> 1050): inside 0-2359, still wrong."""
    return f.assign(sched_dep_time=(f["sched_dep_time"] // 100) * 60 + f["sched_dep_time"] % 100)


def minutes_over_59(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(sched_arr_time=[1075] + f["sched_arr_time"].tolist()[1:])


def pressure_in_inhg(f: pd.DataFrame) -> pd.DataFrame:
    """A feed switching pressure from millibars to inches of mercury: every value out of
    range; before, a warning and then a month without the feature."""
    return f.assign(pressure=f["pressure"] * 0.02953)


def temperature_in_celsius(f: pd.DataFrame) -> pd.DataFrame:
    """A feed switching temperature to °C: every value still inside the -40..130 range; the
    month's mean (and spread) are not a °F month's."""
    return f.assign(temp=(f["temp"] - 32) / 1.8)


def bulk_wind_corruption(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(wind_speed=np.where(np.arange(len(f)) < 30, 1048.36, f["wind_speed"]))


CASES: list[tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str | None, str]] = [
    (drop_column, "expect_column_to_exist", "dest", "block"),
    (wrong_type, "expect_column_values_to_be_in_type_list", "distance", "block"),
    (unknown_carrier, "expect_column_values_to_be_in_set", "carrier", "block"),
    (bad_dest_code, "expect_column_values_to_match_regex", "dest", "block"),
    (month_out_of_range, "expect_column_values_to_be_between", "distance", "block"),
    (null_carrier, "expect_column_values_to_not_be_null", "carrier", "block"),
    (
        duplicated_flight,
        "expect_compound_columns_to_be_unique",
        "year,month,day,carrier,flight,origin",
        "block",
    ),
    (wrong_month, "expect_column_values_to_be_in_set", "_in_partition", "block"),
    (impossible_date, "expect_column_values_to_not_be_null", "_time", "block"),
    (all_delayed, "expect_column_mean_to_be_between", "_label", "block"),
    (too_few_rows, "expect_table_row_count_to_be_between", None, "block"),
    (wind_sensor_error, "expect_column_values_to_be_between", "wind_speed", "warn"),
    (bulk_wind_corruption, "expect_column_values_to_be_between", "wind_speed", "block"),
    (minutes_after_midnight, "expect_column_values_to_be_in_set", "_hour_agrees", "block"),
    (minutes_over_59, "expect_column_values_to_be_between", "_sched_arr_time_minutes", "block"),
    (pressure_in_inhg, "expect_column_values_to_be_between", "pressure", "block"),
    (temperature_in_celsius, "expect_column_mean_to_be_between", "temp", "block"),
]
