"""Helpers of the task e2e tests (test_tasks.py, test_hotel_rates.py): a project of its own, the
`maas` command run in it, and a packaged image served, compared with the registered pyfunc and
fuzzed by schemathesis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from maas.net import free_port
from maas.release import containers
from tests.e2e.helpers import container_runtime_or_skip, session_env


def maas(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`maas ARGS -p root/params.yaml` in `root`, as a user runs it; it must succeed."""
    command = [sys.executable, "-m", "maas.cli", *args, "-p", str(root / "params.yaml")]
    done = subprocess.run(
        command, cwd=root, env=session_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@contextmanager
def served_champion(root: Path, task: str) -> Iterator[str]:
    """`maas package champion --task TASK` (infra-validated), then its image running on a free
    port; yields the base URL and removes the container after."""
    runtime = container_runtime_or_skip()
    packaged = json.loads(maas(root, "package", "champion", "--task", task, "--json").stdout)
    assert packaged["infra_validation"] == "passed", packaged
    port = free_port()
    name = containers.run_container(runtime, packaged["image"], f"maas-e2e-{task}-{port}", port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert containers.wait_ready(base, 120), containers.container_logs(runtime, name)
        yield base
    finally:
        containers.remove_container(runtime, name)


def pyfunc_predictions(root: Path, model: str, rows: pd.DataFrame) -> pd.DataFrame:
    """The registered version 1's pyfunc output for `rows`, read from the project's own store
    without setting MLflow's process-wide URIs (set_tracking_uri also exports
    MLFLOW_TRACKING_URI, which the next project's `maas` subprocess would inherit)."""
    import mlflow
    from mlflow import MlflowClient

    store = f"sqlite:///{root / '.maas' / 'mlflow.db'}"
    location = MlflowClient(store, store).get_model_version_download_uri(model, "1")
    frame: pd.DataFrame = mlflow.pyfunc.load_model(location).predict(rows)
    return frame


def predict(base: str, body_key: str, rows: pd.DataFrame) -> list[dict[str, Any]]:
    records = json.loads(rows.to_json(orient="records"))
    answer = httpx.post(f"{base}/predict", json={body_key: records}, timeout=10)
    assert answer.status_code == 200, answer.text
    predictions: list[dict[str, Any]] = answer.json()["predictions"]
    return predictions


def assert_close(got: list[float], expected: pd.Series, relative: bool = False) -> None:
    """|container - pyfunc| <= 1e-5 (relative to values above 1 when `relative`)."""
    want = expected.to_numpy(dtype=float)
    scale = np.maximum(1.0, np.abs(want)) if relative else 1.0
    assert np.max(np.abs(np.array(got) - want) / scale) <= 1e-5


def fuzz(base: str, examples: int = 30) -> None:
    """schemathesis from the service's own OpenAPI document, all checks: no 5xx, responses
    match their schema, invalid data refused, valid data accepted. The serving code is the
    one test_packaging.py fuzzes at full depth (300 examples); here each task's own schema
    (other field kinds, another body key) is what is new, so fewer examples suffice."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--workers",
        "1",
        "--seed",
        "1",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}
    )
    assert done.returncode == 0, done.stdout[-2500:]


def record_fields(base: str) -> set[str]:
    docs = httpx.get(f"{base}/docs.json", timeout=10).json()
    return set(docs["components"]["schemas"]["Record"]["properties"])
