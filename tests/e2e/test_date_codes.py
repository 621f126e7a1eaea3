"""A table whose time column holds dates written as digits (20130105, as many exports write
them; floats with blanks once a CSV has a missing date): `maas task init` reads them as dates
with flags only, `maas run --task` partitions them by month, validates (`_time`, the partition
check), tests on the newest months and registers, and the model answers records with or
without the date."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.e2e.task_projects import maas, pyfunc_predictions
from tests.helpers import ROOT, make_sales

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_integer_date_column_runs_as_dates_from_init_to_a_prediction(
    prefect_api, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    frame = make_sales(nulls=5)  # the CSV holds 20130105.0 and blanks
    frame.to_csv(tmp_path / "sales.csv", index=False)
    made = maas(
        tmp_path,
        *("task", "init", "sales", "--data", "sales.csv", "--label", "units", "--time", "date"),
        *("--kind", "regression", "--transform", "none"),
    )
    said = " ".join(made.stdout.split())
    assert "read as dates yyyymmdd" in said, made.stdout
    task = yaml.safe_load((tmp_path / "tasks" / "sales.yaml").read_text())
    assert task["data"]["time"] == {"column": "date", "partition": "month", "format": "yyyymmdd"}
    gate = ["--set", "promotion.must_beat=[prior]", "--set", "promotion.floors={}"]
    result = json.loads(maas(tmp_path, "run", "--task", "sales", "--json", *gate).stdout)
    metrics = result["metrics"]
    assert result["registered"]["version"] == "1", result
    raw = sorted(path.stem for path in (tmp_path / "data" / "sales" / "raw").glob("*.parquet"))
    assert raw == [f"2013-{month:02d}" for month in range(1, 13)]  # months, not numbers
    assert metrics["test_partitions"][-1] == "2013-12", metrics["test_partitions"]
    assert metrics["gate"]["promoted"], metrics["gate"]
    assert metrics["test"]["r2"] > 0.5  # units follow the price: learned, not the prior
    rows = make_sales(10, seed=5).drop(columns=["units"])
    without = pyfunc_predictions(tmp_path, "sales", rows.drop(columns=["date"]))
    with_date = pyfunc_predictions(tmp_path, "sales", rows)  # the date is no input: ignored
    assert np.isfinite(without["prediction"]).all()
    assert np.allclose(without["prediction"], with_date["prediction"])
