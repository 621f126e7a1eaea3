"""A task made on the fly, with no code change: another schema, a multiclass label, weekly
partitions in one CSV. `maas task init` writes its task file, `maas run --task` validates,
trains, registers and gates it, `maas package --task` builds its image, and the container
answers with the task's own fields and classes, equal to the registered pyfunc, refusing
another task's request by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
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

GATE = [
    "--set",
    "promotion.must_beat=[prior]",
    "--set",
    "evaluate.baselines=[prior, logistic_regression]",
]
CLASSES = ["churned", "downgraded", "stayed"]


def customers(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Ten weeks of sign-ups; what a customer did next depends on the plan, region and tenure."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    signed = start + pd.to_timedelta(rng.integers(0, 70 * 24 * 60, n), unit="min")
    plan = rng.choice(["basic", "pro", "team"], n)
    region = rng.choice(["north", "south", "east", "west"], n)
    tenure = rng.gamma(2, 10, n).round(1)
    spend = np.where(rng.random(n) < 0.05, np.nan, rng.normal(50, 15, n))
    churn = -1.0 + 1.6 * (plan == "basic") - 0.06 * tenure + 0.8 * (region == "south")
    downgrade = -0.5 + 1.5 * (plan == "team") - 0.02 * tenure
    scores = np.stack([churn, downgrade, np.zeros(n)], axis=1) + rng.gumbel(size=(n, 3))
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in range(n)],
            "signed_up": signed.strftime("%Y-%m-%dT%H:%M:%S"),
            "plan": plan,
            "region": region,
            "tenure_days": tenure,
            "monthly_spend": spend,
            "outcome": np.asarray(CLASSES)[scores.argmax(axis=1)],
        }
    )


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def churn(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    """A project with the churn task made by `maas task init` and run once: each test can run
    first (xdist keeps a module on one worker, not its order)."""
    root = tmp_path_factory.mktemp("churn-project")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    customers().to_csv(root / "customers.csv", index=False)
    made = maas(
        root,
        "task",
        "init",
        "churn",
        "--data",
        "customers.csv",
        "--label",
        "outcome",
        "--kind",
        "multiclass",
        "--time",
        "signed_up",
        "--exclude",
        "customer_id",
        "--key",
        "customer_id",
    )
    assert f"wrote {root / 'tasks' / 'churn.yaml'}" in made.stdout
    assert "classes of outcome: churned " in " ".join(made.stdout.split())
    return root, json.loads(maas(root, "run", "--task", "churn", "--json", *GATE).stdout)


def test_a_new_task_goes_from_init_to_a_champion_with_no_code(churn: tuple[Path, dict]) -> None:
    root, result = churn
    task = (root / "tasks" / "churn.yaml").read_text()
    assert "partition: week" in task and "customer_id" not in task.split("features:")[1]
    assert result["registered"]["version"] == "1", result
    assert sorted(result["metrics"]["test_partitions"]) == ["2024-W10"]
    assert result["metrics"]["gate"]["promoted"], result["metrics"]["gate"]
    assert result["metrics"]["kind"] == "multiclass"
    assert result["metrics"]["gate_metric"] == "macro_f1"
    test, prior = result["metrics"]["test"], result["metrics"]["baselines"]["prior"]
    assert test["macro_f1"] > prior["macro_f1"] and test["log_loss"] < prior["log_loss"]
    assert sorted(Path(root, "data/churn/raw").glob("*.parquet"))[0].stem == "2024-W01"
    (row,) = json.loads(maas(root, "task", "list", "--json").stdout)
    assert (row["task"], row["model"], row["champion"]) == ("churn", "churn", "1")
    assert row["label"] == f"outcome in {CLASSES}" and row["partition"] == "week"


def test_its_container_answers_with_the_tasks_own_fields(churn: tuple[Path, dict]) -> None:
    root, _ = churn
    with served_champion(root, "churn") as base:
        rows = customers(40, seed=5).drop(columns=["customer_id", "outcome"])
        got = predict(base, "records", rows)
        assert set(got[0]) == {"predicted_class", "probabilities", "unknown_inputs"}
        assert {p["predicted_class"] for p in got} <= set(CLASSES)
        expected = pyfunc_predictions(root, "churn", rows)
        for name in CLASSES:
            assert_close([p["probabilities"][name] for p in got], expected[f"probabilities_{name}"])
        assert [p["predicted_class"] for p in got] == expected["predicted_class"].tolist()
        flight = {
            "carrier": "AA",
            "origin": "JFK",
            "dest": "LAX",
            "sched_dep_time": 900,
            "sched_arr_time": 1200,
            "distance": 2475,
        }
        refused = httpx.post(f"{base}/predict", json={"records": [flight]}, timeout=10)
        assert refused.status_code == 400 and "plan" in refused.text and "signed_up" in refused.text
        record = json.loads(rows.head(1).to_json(orient="records"))[0]
        other_key = httpx.post(f"{base}/predict", json={"flights": [record]}, timeout=10)
        assert other_key.status_code == 400 and "records" in other_key.text
        fields = {"plan", "region", "tenure_days", "monthly_spend", "signed_up"}
        assert record_fields(base) == fields
        fuzz(base)


def houses(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A table with no time column: sold houses, their price from the area and the town."""
    rng = np.random.default_rng(seed)
    area = rng.gamma(4, 30, n).round(1)
    town = rng.choice(["north", "south", "east"], n)
    price = 1000 * area * np.where(town == "south", 1.3, 1.0) + rng.normal(0, 5000, n)
    return pd.DataFrame(
        {
            "house_id": [f"h{i:05d}" for i in range(n)],
            "area": area,
            "town": town,
            "rooms": rng.integers(1, 7, n),
            "price": price.round(),
        }
    )


def test_a_table_without_a_time_column_runs_on_buckets_of_its_key(
    prefect_api, tmp_path: Path
) -> None:
    """No --time: task init writes a key_hash split, `maas run` trains on the first buckets
    and tests on the last, and the registered model answers records with no time field."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    houses().to_csv(tmp_path / "houses.csv", index=False)
    made = maas(
        tmp_path,
        *("task", "init", "houses", "--data", "houses.csv", "--label", "price"),
        *("--kind", "regression", "--key", "house_id"),
    )
    assert "no time column: each row goes to one of 10 buckets" in " ".join(made.stdout.split())
    gate = ["--set", "promotion.must_beat=[prior]", "--set", "promotion.floors={}"]
    result = json.loads(maas(tmp_path, "run", "--task", "houses", "--json", *gate).stdout)
    metrics = result["metrics"]
    assert result["registered"]["version"] == "1", result
    assert metrics["test_partitions"] and all(
        name.startswith("hash-") for name in metrics["test_partitions"]
    )
    assert metrics["gate"]["promoted"], metrics["gate"]
    assert metrics["test"]["r2"] > 0.5  # price follows area: learned, not the prior
    rows = houses(20, seed=5).drop(columns=["house_id", "price"])
    predicted = pyfunc_predictions(tmp_path, "houses", rows)
    assert len(predicted) == 20 and np.isfinite(predicted["prediction"]).all()
    (row,) = json.loads(maas(tmp_path, "task", "list", "--json").stdout)
    assert row["partition"] == "bucket"
