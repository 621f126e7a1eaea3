"""`dvc repro` runs the same stages in a fresh repo, and a new month reruns them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import copy_months
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def sh(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_dvc_repro_and_a_new_month(tmp_path: Path, real_months: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(ROOT / "src", repo / "src")  # stage deps
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["max_epochs"] = 1
    params["evaluate"]["baselines"] = ["prior", "logistic_regression"]
    params["promotion"]["must_beat"] = ["prior"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "params.tuned.yaml", repo / "params.tuned.yaml")
    shutil.copytree(ROOT / "tasks", repo / "tasks")  # the tasks' own parameters
    shutil.copy(ROOT / "params.tuned.hotel-rates.yaml", repo / "params.tuned.hotel-rates.yaml")
    hotel = repo / "tasks" / "hotel-rates.yaml"  # its stages run too: quickly here
    hotel.write_text(hotel.read_text().replace("max_epochs: 20", "max_epochs: 2"))
    flights = repo / "tasks" / "flight-delay.yaml"  # its TabM: ~11 min per epoch on 2 cores
    text = flights.read_text()
    for default, quick in (("kind: tabm", "kind: mlp"), ("max_epochs: 16", "max_epochs: 1")):
        assert default in text, f"tasks/flight-delay.yaml no longer says {default!r}"
        text = text.replace(default, quick)
    flights.write_text(text)
    sh("git", "init", "-q", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    copy_months(real_months, repo / "data" / "raw", ["2013-10", "2013-11"])
    sh("dvc", "add", "-q", "data/raw", cwd=repo)

    sh("dvc", "repro", cwd=repo)
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["test_partitions"] == ["2013-11"] and metrics["champion"] is None
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo))
    assert "roc_auc" in json.dumps(shown)
    # the second example task's own stages: its data from the package, its own folders
    assert len(list((repo / "data" / "hotel-rates" / "raw").glob("*.parquet"))) == 14
    hotel_metrics = json.loads((repo / "reports" / "hotel-rates" / "metrics.json").read_text())
    assert hotel_metrics["kind"] == "regression" and hotel_metrics["test_partitions"] == ["2017-08"]
    assert "r2" in json.dumps(shown)
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=repo)
    # what `maas tune` writes is a dependency of the train stage
    (repo / "params.tuned.yaml").write_text("model:\n  dropout: 0.2\n")
    status = sh("dvc", "status", cwd=repo)
    assert "train:" in status and "params.tuned.yaml" in status, status
    # so is the task file's feature section
    task_file = repo / "tasks" / "flight-delay.yaml"
    task_file.write_text(task_file.read_text().replace("min_frequency: 20", "min_frequency: 21"))
    status = sh("dvc", "status", cwd=repo)
    assert "tasks/flight-delay.yaml" in status and re.search(r"modified:\s+features", status), (
        status
    )

    # A user drops December in: the pipeline reruns and December becomes the test month.
    copy_months(real_months, repo / "data" / "raw", ["2013-12"])
    assert "modified" in sh("dvc", "status", cwd=repo)
    sh("dvc", "repro", cwd=repo)
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["test_partitions"] == ["2013-12"]
    assert "nfiles: 3" in (repo / "data" / "raw.dvc").read_text()
