"""`make bench-smoke`: benchmarks/run_all.py --smoke runs every benchmark step but promotion
(which builds container images) with tiny settings, on three real months of the default task,
in a subprocess: it exits 0 and each step wrote its JSON, with its measurements in it. What
each step runs in the smoke mode: benchmarks/run_all.py's docstring."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MONTHS = ["2013-10", "2013-11", "2013-12"]
STEP_FILES = {  # step -> its JSON (run_all's --out-dir)
    "pipeline": "pipeline.json",
    "training": "training.json",
    "runtime": "runtime.json",
    "kinds": "model-kinds.json",
    "serving": "serving.json",
    "gateway": "gateway.json",
}
TOOLS = ("wrk", "haproxy")  # the load generator; maas's gateway (scripts/system-packages)


@pytest.fixture(scope="module")
def raw_months(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real months of the flight-delay task (two train, December tests)."""
    from maas.config import load_params
    from maas.pipeline.data.sources import ingest_partitions

    folder = tmp_path_factory.mktemp("raw")
    params = load_params(ROOT / "params.yaml", [f"data.raw_dir={folder}"])
    ingest_partitions(params.data, MONTHS)
    return folder


def numbers(document: Any) -> list[float]:
    """Every number in a JSON document (booleans are not numbers here)."""
    if isinstance(document, dict):
        return [n for value in document.values() for n in numbers(value)]
    if isinstance(document, list):
        return [n for value in document for n in numbers(value)]
    if isinstance(document, int | float) and not isinstance(document, bool):
        return [float(document)]
    return []


def test_every_benchmark_step_runs_in_the_smoke_mode(raw_months: Path, tmp_path: Path) -> None:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            missing(tool, f"{tool} is not installed")
    steps, summary = tmp_path / "steps", tmp_path / "benchmarks.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    done = subprocess.run(
        [sys.executable, "-u", str(ROOT / "benchmarks/run_all.py"), "--smoke"]
        + ["--raw-dir", str(raw_months), "--out-dir", str(steps), "--output", str(summary)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    results = {step: json.loads((steps / name).read_text()) for step, name in STEP_FILES.items()}
    for step, document in results.items():
        found = numbers(document)
        assert found and all(math.isfinite(n) for n in found), f"{step}: {found[:20]}"
    pipeline, training = results["pipeline"], results["training"]
    assert pipeline["ours_wall_s"] > 0 and pipeline["plain_wall_s"] > 0
    assert 0.5 < pipeline["test_score"]["ours"] <= 1  # the flight-delay task's ROC AUC
    assert all(rate > 0 for rate in training["samples_per_s"].values())
    assert all(us > 0 for case in results["runtime"]["latency_us"].values() for us in case.values())
    assert {"mlp", "tabm"} <= set(results["kinds"]["latency"])
    for server, cases in results["serving"].items():
        assert all(row["rps"] > 0 for row in cases.values()), server
        # BentoML's adaptive batching turns some requests away under load: reported, not a bug
        if server != "maas_batching":
            assert all(row["non_2xx"] == 0 for row in cases.values()), server
    gateway = results["gateway"]["throughput"]
    assert {"direct", "maas_gateway", "maas_forwarder"} <= set(gateway)
    assert all(row["rps"] > 0 for cases in gateway.values() for row in cases.values())

    written = json.loads(summary.read_text())
    assert written["smoke"] and set(written["step_seconds"]) == set(STEP_FILES)
    assert written["goals"] and all(math.isfinite(goal["measured"]) for goal in written["goals"])
