"""`maas task init` on a table with no time column (a split by a hash of the key, said in the
task file) and on an integer time column (a year, a day number: ordered periods, never date
strings), and the floor it proposes measured as the run measures it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from maas.cli import app
from maas.cli.common import Project
from maas.errors import DataError
from maas.pipeline.data.partitions import list_partitions, period_bounds, period_names
from maas.pipeline.data.profile import TaskRequest, profile
from tests.helpers import ROOT


def houses(n: int = 1500, seed: int = 0, with_id: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.gamma(4, 30, n).round(1)
    town = rng.choice(["north", "south", "east"], n)
    price = (1000 * area * np.where(town == "south", 1.3, 1.0) + rng.normal(0, 5000, n)).round()
    frame = pd.DataFrame({"area": area, "town": town, "rooms": rng.integers(1, 7, n)})
    frame["price"] = price
    if with_id:
        frame.insert(0, "house_id", [f"h{i:05d}" for i in range(n)])
    return frame


def test_a_table_without_a_time_column_is_split_by_a_hash_of_its_key(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    houses().to_csv(path, index=False)
    made = profile(TaskRequest("houses", path, "price", kind="regression", keys=("house_id",)))
    data, notes = made.task["data"], " ".join(made.notes)
    assert "time" not in data
    assert data["split"] == {"by": "key_hash", "buckets": 10, "key": ["house_id"]}
    assert made.task["validation"]["unique_key"] == ["house_id"]
    assert made.task["features"]["derived"] == {}  # no time: no weekday
    assert "sha256 of its key ['house_id']" in notes and "10 hash-bucket partitions" in notes
    assert "test window hash-9 (1 partition(s)" in notes or "test window hash-8..hash-9" in notes
    assert "R² on the test window" in notes  # a floor measured on the same buckets


def test_without_a_key_the_whole_row_is_hashed_and_said(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    houses(with_id=False).to_csv(path, index=False)
    made = profile(TaskRequest("houses", path, "price", kind="regression"))
    assert made.task["data"]["split"]["key"] == []
    assert "identical rows land on the same side" in " ".join(made.notes)


def test_a_missing_key_value_or_time_column_is_one_line(tmp_path: Path) -> None:
    frame = houses(200)
    frame.loc[5, "house_id"] = None
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'house_id' \(1 rows\) have missing values") as caught:
        profile(TaskRequest("houses", path, "price", kind="regression", keys=("house_id",)))
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match=r"--time 'sold' is not a column of .*leave --time out"):
        profile(TaskRequest("houses", path, "price", time="sold", kind="regression"))


def inspections(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    year = rng.integers(2005, 2020, n)
    visits = rng.integers(1, 20, n)
    score = 90 - 0.3 * visits + 0.2 * (year - 2005) + rng.normal(0, 2, n)
    return pd.DataFrame({"Year": year, "visits": visits, "score": score.round(1)})


def test_an_integer_year_is_an_ordered_period_not_a_date_string(tmp_path: Path) -> None:
    path = tmp_path / "insp.csv"
    inspections().to_csv(path, index=False)
    made = profile(TaskRequest("insp", path, "score", time="Year", kind="regression"))
    data, features = made.task["data"], made.task["features"]
    assert data["time"] == {"column": "Year", "partition": "number", "span": 1}
    assert features["derived"] == {} and "Year" not in features["numeric"]  # not an input
    notes = " ".join(made.notes)
    assert "Year holds integers (2005 to 2019): read as an ordered period" in notes
    assert "test window 2018..2019" in notes or "test window 2019 (" in notes
    asked = profile(
        TaskRequest("insp", path, "score", time="Year", kind="regression", partition="year")
    )
    assert asked.task["data"]["time"]["partition"] == "number"  # a year, one a partition


def test_a_day_number_gets_a_span_and_its_partitions_sort_as_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"day": rng.integers(1, 366, 2000), "x": rng.normal(size=2000), "y": rng.normal(size=2000)}
    )
    path = tmp_path / "days.csv"
    frame.to_csv(path, index=False)
    made = profile(TaskRequest("days", path, "y", time="day", kind="regression"))
    assert made.task["data"]["time"] == {"column": "day", "partition": "number", "span": 20}
    names = period_names(frame["day"].astype(float), "number", 20)
    assert set(names) == {str(20 * k) for k in range(19)}  # 0, 20, .., 360: 19 partitions
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("0", "20", "100", "360"):
        (raw / f"{name}.parquet").write_bytes(b"")
    listed = [p.name for p in list_partitions(raw, "number", 20)]
    assert listed == ["0", "20", "100", "360"]  # 100 after 20, not before
    assert period_bounds("100", "number", 20) == (100.0, 120.0)
    with pytest.raises(DataError, match="--partition number reads an integer time column"):
        profile(TaskRequest("days", path, "y", time="x", kind="regression", partition="number"))


def test_init_without_time_writes_a_task_that_loads_and_says_its_split(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    path = tmp_path / "houses.parquet"
    houses().to_parquet(path, index=False)
    result = CliRunner().invoke(
        app,
        ["task", "init", "houses", "--data", str(path), "--label", "price", "--kind"]
        + ["regression", "--key", "house_id", "-p", str(tmp_path / "params.yaml")],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "tasks" / "houses.yaml").read_text()
    comment = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "data.split: no time column: each row goes to one of 10 buckets by a sha256" in comment
    assert yaml.safe_load(text)["data"]["split"]["by"] == "key_hash"
    params = Project(tmp_path / "params.yaml").load("houses")
    assert params.data.time is None and params.data.partitioning == "bucket"
    assert params.logged_keys == ["house_id"]
    refused = CliRunner().invoke(
        app,
        ["task", "init", "h2", "--data", str(path), "--label", "price", "--kind", "regression"]
        + ["--partition", "month", "-p", str(tmp_path / "params.yaml")],
    )
    assert refused.exit_code != 0 and "--partition is for a --time column" in refused.output


def test_the_floor_is_measured_without_the_validation_slice_the_run_leaves_out(
    tmp_path: Path,
) -> None:
    """The run fits its baselines on the training window less its latest tenth (the
    validation slice); so does task init. Here that tenth is corrupt (labels off by 500):
    fitted on it, linear regression's R² on the test years would be far lower."""
    frame = inspections(3000, seed=1).sort_values("Year", kind="stable", ignore_index=True)
    rng = np.random.default_rng(2)
    frame["town"] = rng.choice(["a", "b"], 3000)
    frame["score"] = 50 + 3 * frame["visits"] + 2 * (frame["town"] == "a") + rng.normal(0, 1, 3000)
    test_years = frame["Year"] >= 2018
    training = frame.index[~test_years]
    corrupt = training[-round(0.1 * len(training)) :]  # the validation slice, in time order
    frame.loc[corrupt, "score"] += 500
    path = tmp_path / "insp.csv"
    frame.to_csv(path, index=False)
    made = profile(
        TaskRequest("insp", path, "score", time="Year", kind="regression", transform="none")
    )
    assert "test window 2018..2019" in " ".join(made.notes)
    assert made.task["promotion"]["floors"]["r2"] > 0.9  # learned on clean rows only
    wider = profile(
        TaskRequest(
            "insp",
            path,
            "score",
            time="Year",
            kind="regression",
            transform="none",
            validation_fraction=0.05,
        )
    )
    assert wider.task["promotion"]["floors"]["r2"] < 0.5  # half the corrupt rows fitted
