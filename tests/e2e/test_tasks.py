"""A task made on the fly, with no code change: another schema, weekly partitions in one CSV.
`maas task init` writes its task file, `maas run --task` validates, trains, registers and gates
it, `maas package --task` builds its image, and the container answers with the task's own
fields, equal to the registered pyfunc, refusing another task's request by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from maas.net import free_port
from maas.release import containers
from tests.e2e.helpers import container_runtime_or_skip, session_env
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GATE = ["--set", "promotion.floors.roc_auc=0.6", "--set", "promotion.must_beat=[prior]",
        "--set", "evaluate.baselines=[prior, logistic_regression]"]  # fmt: skip


def customers(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Ten weeks of sign-ups; churn depends on the plan, the region and tenure."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    signed = start + pd.to_timedelta(rng.integers(0, 70 * 24 * 60, n), unit="min")
    plan = rng.choice(["basic", "pro", "team"], n)
    region = rng.choice(["north", "south", "east", "west"], n)
    tenure = rng.gamma(2, 10, n).round(1)
    spend = np.where(rng.random(n) < 0.05, np.nan, rng.normal(50, 15, n))
    logit = -1.0 + 1.6 * (plan == "basic") - 0.06 * tenure + 0.8 * (region == "south")
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({
        "customer_id": [f"c{i:06d}" for i in range(n)],
        "signed_up": signed.strftime("%Y-%m-%dT%H:%M:%S"),
        "plan": plan, "region": region, "tenure_days": tenure, "monthly_spend": spend,
        "churned": churned,
    })  # fmt: skip


def maas(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "maas.cli", *args, "-p", str(root / "params.yaml")]
    done = subprocess.run(command, cwd=root, env=session_env(), capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def churn(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    """A project with the churn task made by `maas task init` and run once: each test can run
    first (xdist keeps a module on one worker, not its order)."""
    root = tmp_path_factory.mktemp("churn-project")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    customers().to_csv(root / "customers.csv", index=False)
    made = maas(root, "task", "init", "churn", "--data", "customers.csv", "--label",
                "churned", "--time", "signed_up", "--exclude", "customer_id",
                "--key", "customer_id")  # fmt: skip
    assert f"wrote {root / 'tasks' / 'churn.yaml'}" in made.stdout
    assert "churned == 'yes' (the rarer value): check it" in " ".join(made.stdout.split())
    return root, json.loads(maas(root, "run", "--task", "churn", "--json", *GATE).stdout)


def test_a_new_task_goes_from_init_to_a_champion_with_no_code(churn: tuple[Path, dict]) -> None:
    root, result = churn
    task = (root / "tasks" / "churn.yaml").read_text()
    assert "partition: week" in task and "customer_id" not in task.split("features:")[1]
    assert result["registered"]["version"] == "1", result
    assert sorted(result["metrics"]["test_partitions"]) == ["2024-W10"]
    assert result["metrics"]["gate"]["promoted"], result["metrics"]["gate"]
    assert sorted(Path(root, "data/churn/raw").glob("*.parquet"))[0].stem == "2024-W01"
    (row,) = json.loads(maas(root, "task", "list", "--json").stdout)
    assert (row["task"], row["model"], row["champion"]) == ("churn", "churn", "1")
    assert row["label"] == "churned == 'yes'" and row["partition"] == "week"


def test_its_container_answers_with_the_tasks_own_fields(churn: tuple[Path, dict]) -> None:
    import mlflow

    root, _ = churn
    runtime = container_runtime_or_skip()
    packaged = json.loads(maas(root, "package", "champion", "--task", "churn", "--json").stdout)
    assert packaged["infra_validation"] == "passed", packaged
    port = free_port()
    name = containers.run_container(runtime, packaged["image"], f"maas-e2e-churn-{port}", port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert containers.wait_ready(base, 120), containers.container_logs(runtime, name)
        rows = customers(40, seed=5).drop(columns=["customer_id", "churned"])
        records = json.loads(rows.to_json(orient="records"))
        answer = httpx.post(f"{base}/predict", json={"records": records}, timeout=10)
        assert answer.status_code == 200, answer.text
        got = [p["probability"] for p in answer.json()["predictions"]]
        assert {"probability", "positive", "unknown_inputs"} == set(answer.json()["predictions"][0])
        mlflow.set_tracking_uri(f"sqlite:///{root / '.maas' / 'mlflow.db'}")
        expected = mlflow.pyfunc.load_model("models:/churn/1").predict(rows)["probability"]
        assert np.max(np.abs(np.array(got) - expected.to_numpy())) <= 1e-5
        flight = {"carrier": "AA", "origin": "JFK", "dest": "LAX", "sched_dep_time": 900,
                  "sched_arr_time": 1200, "distance": 2475}  # fmt: skip
        refused = httpx.post(f"{base}/predict", json={"records": [flight]}, timeout=10)
        assert refused.status_code == 400 and "plan" in refused.text and "signed_up" in refused.text
        other_key = httpx.post(f"{base}/predict", json={"flights": [records[0]]}, timeout=10)
        assert other_key.status_code == 400 and "records" in other_key.text
        docs = httpx.get(f"{base}/docs.json", timeout=10).json()
        fields = docs["components"]["schemas"]["Record"]["properties"]
        assert set(fields) == {"plan", "region", "tenure_days", "monthly_spend", "signed_up"}
        fuzz = [str(Path(sys.executable).with_name("schemathesis")), "run",
                f"{base}/docs.json", "--checks", "all", "--max-examples", "100",
                "--workers", "1", "--seed", "1"]  # fmt: skip
        done = subprocess.run(fuzz, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
        assert done.returncode == 0, done.stdout[-2500:]
    finally:
        containers.remove_container(runtime, name)
