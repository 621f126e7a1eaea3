"""Dates written as digits (20130105, 201301) in a `--time` column: recognised only when every
value is a valid date in one form with a plausible year, written into the task file as
`data.time.format`, and read in that form wherever a row's time is read (partitions, the
validation batch's `_time`, a logged record's period). A plain year or a day number stays an
ordered number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from maas.config import DataParams, TimeSpec, load_params
from maas.errors import DataError
from maas.monitor.evidence import served_periods
from maas.pipeline.data.date_codes import detect_date_code, parse_date_codes
from maas.pipeline.data.partitions import Partition, row_periods, row_times
from maas.pipeline.data.profile import TaskRequest, profile
from maas.pipeline.validation.batch import DATE_COLUMN, PARTITION_COLUMN, prepare_batch
from tests.helpers import ROOT, make_sales


@pytest.mark.parametrize(
    ("values", "form"),
    [
        ([20130105, 20131231, 20140101], "yyyymmdd"),
        ([201301, 201312, 199902], "yyyymm"),
        (["20130105", " 20130106", None], "yyyymmdd"),  # text, a blank, a missing value
        ([20130105.0, np.nan, 20130229 - 100], "yyyymmdd"),  # floats: an int column with nulls
        (pd.array([20240229, None], dtype="Int64"), "yyyymmdd"),  # a leap day
        ([18000101, 22001231], "yyyymmdd"),  # the plausible years' edges
    ],
)
def test_dates_written_as_digits_are_recognised(values: list, form: str) -> None:
    assert detect_date_code(pd.Series(values)) == form


@pytest.mark.parametrize(
    "values",
    [
        [20131332, 20130101],  # month 13, day 32
        [19970000],  # month and day 0
        [20230229],  # not a leap year
        [20130105, 201301],  # mixed lengths
        [-20130105, 20130105],  # a negative number
        [20130105.5],  # not whole
        [1997, 2013],  # a plain year: an ordered number
        list(range(1, 366)),  # a day number
        [17991231, 20130105],  # a year before 1800
        [22010101],  # a year after 2200
        ["2013-01-05"],  # ISO text: read as dates the usual way
        [True, False],
        [np.nan, None],  # no value at all
    ],
)
def test_anything_else_is_not_a_date_code(values: list) -> None:
    assert detect_date_code(pd.Series(values)) is None


def test_parsing_reads_ints_floats_and_text_alike_and_refuses_other_forms() -> None:
    values = pd.Series([20130105, "20130106", 20130107.0, None, "2013-01-08", 20131332, 2013010])
    times = parse_date_codes(values, "yyyymmdd").tolist()
    assert times[:3] == [pd.Timestamp(2013, 1, d) for d in (5, 6, 7)]
    assert all(pd.isna(t) for t in times[3:])  # missing, ISO text, no date, 7 digits
    months = parse_date_codes(pd.Series([201301, "201312", 20130105]), "yyyymm").tolist()
    assert months[:2] == [pd.Timestamp(2013, 1, 1), pd.Timestamp(2013, 12, 1)]
    assert pd.isna(months[2])


def test_init_reads_an_integer_date_column_as_dates_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    make_sales(nulls=3).to_csv(path, index=False)
    assert pd.read_csv(path)["date"].dtype == np.float64  # 20130105.0 and blanks
    made = profile(TaskRequest("sales", path, "units", time="date", kind="regression"))
    data, notes = made.task["data"], " ".join(made.notes)
    assert data["time"] == {"column": "date", "partition": "month", "format": "yyyymmdd"}
    assert "read as dates yyyymmdd (data.time.format: yyyymmdd), monthly partitions" in notes
    assert "2013-01-01 to 2013-12-31" in notes
    assert "3 row(s) have no date: left out" in notes
    assert "12 monthly partitions" in notes and "test window 2013-1" in notes
    assert made.task["features"]["derived"] == {}  # no weekday from a digits date (yet)
    assert "date" not in made.task["features"]["numeric"]  # when, not an input
    daily = profile(
        TaskRequest("sales", path, "units", time="date", kind="regression", partition="day")
    )
    assert daily.task["data"]["time"]["partition"] == "day"
    plain = profile(
        TaskRequest("sales", path, "units", time="date", kind="regression", partition="number")
    )
    assert plain.task["data"]["time"]["partition"] == "number"  # asked: a plain number


def test_init_reads_yyyymm_months_by_month_and_refuses_days(tmp_path: Path) -> None:
    frame = make_sales()
    frame["date"] = frame["date"].astype(str).str[:6]  # text: "201301"
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path, index=False)
    made = profile(TaskRequest("sales", path, "units", time="date", kind="regression"))
    assert made.task["data"]["time"] == {"column": "date", "partition": "month", "format": "yyyymm"}
    asked = TaskRequest("sales", path, "units", time="date", kind="regression", partition="week")
    with pytest.raises(DataError, match=r"--partition week: 'date' holds months written yyyymm"):
        profile(asked)


def test_a_year_column_stays_an_ordered_number(tmp_path: Path) -> None:
    frame = make_sales()
    frame["date"] = frame["date"] // 10000  # 2013
    frame.loc[:600, "date"] = 2012
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    made = profile(TaskRequest("sales", path, "units", time="date", kind="regression"))
    assert made.task["data"]["time"] == {"column": "date", "partition": "number", "span": 1}


def test_the_time_spec_refuses_a_format_it_cannot_read() -> None:
    assert TimeSpec(column="d", partition="day", format="yyyymmdd").format == "yyyymmdd"
    with pytest.raises(ValidationError, match="partition `number` and date `parts` read no"):
        TimeSpec(column="d", partition="number", format="yyyymmdd")
    with pytest.raises(ValidationError, match="`format: yyyymm` holds months"):
        TimeSpec(column="d", partition="day", format="yyyymm")


def data_params(partition: str = "month") -> DataParams:
    return DataParams.model_validate(
        {
            "time": {"column": "date", "partition": partition, "format": "yyyymmdd"},
            "label": {"column": "units", "kind": "regression"},
        }
    )


def test_rows_partitions_and_the_validation_batch_read_the_format() -> None:
    data = data_params()
    frame = pd.DataFrame({"date": [20130105, 20130228, 20130230, None], "units": [1.0] * 4})
    assert row_periods(frame, data).tolist() == ["2013-01", "2013-02", None, None]
    assert data.time is not None
    assert row_times(frame, data.time).iloc[1] == pd.Timestamp(2013, 2, 28)
    january = Partition(
        "2013-01", Path("2013-01.parquet"), *map(pd.Timestamp, ("2013-01", "2013-02"))
    )
    batch = prepare_batch(frame, load_params(ROOT / "params.yaml").validation, data, january)
    assert batch[DATE_COLUMN].iloc[0] == pd.Timestamp(2013, 1, 5)
    assert batch[DATE_COLUMN].iloc[2:].isna().all()  # 2013-02-30 is no date: `_time` null
    assert batch[PARTITION_COLUMN].iloc[:2].tolist() == [1.0, 0.0]  # February: outside


def test_a_logged_record_lands_in_the_period_of_its_own_digits_date() -> None:
    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(update={"data": data_params("day")})
    rows = pd.DataFrame(
        {
            "date": [20130105, "20130106", None],  # as JSON lines hold them
            "logged_at": pd.to_datetime(["2026-12-07T10:00:00Z"] * 3, utc=True),
        }
    )
    assert served_periods(rows, params).tolist() == ["2013-01-05", "2013-01-06", "2026-12-07"]
