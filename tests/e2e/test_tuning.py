"""`maas tune` on the real data, then `maas run` trains with what it found."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient

from maas.config import load_params
from tests.e2e.helpers import PARAMS, copy_months, overrides_for, session_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "delay-tuned"


def test_tune_then_run_trains_with_the_tuned_values(tmp_path, real_months, prefect_api) -> None:
    from maas.flows.training import training

    root = tmp_path
    overrides = [
        *overrides_for(root, copy_months(real_months, root / "raw")),
        f"registry.model_name={MODEL}",
        f"tune.storage={root / 'optuna.db'}",
        f"tune.output={root / 'params.tuned.yaml'}",
    ]
    sets = [arg for item in overrides for arg in ("--set", item)]
    untuned = load_params(PARAMS, overrides)

    tuned = subprocess.run(
        [sys.executable, "-m", "maas.cli", "tune", "--trials", "2", "--json", "-p", PARAMS, *sets],
        capture_output=True,
        text=True,
        timeout=900,
        env=session_env(),
    )
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    result = json.loads(tuned.stdout.strip().splitlines()[-1])
    assert sum(result["trials"].values()) == 2 and result["trials"].get("COMPLETE", 0) >= 1
    written = yaml.safe_load((root / "params.tuned.yaml").read_text())
    assert written["train"]["learning_rate"] == result["best_values"]["train.learning_rate"]
    assert written["model"]["hidden_sizes"] == result["best_values"]["model.hidden_sizes"]

    training(params_file=PARAMS, overrides=overrides)  # what `maas run` runs
    params = load_params(PARAMS, overrides)  # params.yaml + the tuned file
    assert params.train.learning_rate == result["best_values"]["train.learning_rate"]
    assert params.digest() != untuned.digest()
    client = MlflowClient(str(params.registry.tracking_uri))
    version = client.get_model_version(MODEL, "1")
    assert version.tags["params_digest"] == params.digest()
    logged = client.get_run(version.run_id).data.params
    assert float(logged["train.learning_rate"]) == params.train.learning_rate
    assert json.loads(logged["model.hidden_sizes"]) == params.model.hidden_sizes
