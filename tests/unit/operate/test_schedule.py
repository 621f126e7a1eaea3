"""`maas schedule`: the deployments it serves, built from params.yaml (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from maas.flows.schedule import deployment_names

from maas.config import load_params
from maas.errors import ScheduleError
from maas.operate.prefect_server import ensure_server
from tests.helpers import ROOT


def test_training_on_the_cron_and_reconcile_on_the_interval_from_params() -> None:
    from maas.flows.schedule import deployments

    overrides = [
        "schedule.training_cron=30 3 * * 1",
        "schedule.reconcile_interval_s=45",
        "monitoring.cron=0 6 * * *",
    ]
    params = load_params(ROOT / "params.yaml", overrides)
    training, reconcile, monitoring = deployments(params, ROOT / "params.yaml", overrides)
    assert (training.name, reconcile.name, monitoring.name) == deployment_names("flight-delay")
    assert deployment_names("flight-delay") == (
        "nightly-flight-delay",
        "controller-flight-delay",
        "monitor-flight-delay",
    )
    assert monitoring.schedules[0].schedule.cron == "0 6 * * *"
    assert training.schedules[0].schedule.cron == "30 3 * * 1"
    assert training.schedules[0].schedule.timezone == "UTC"
    assert reconcile.schedules[0].schedule.interval.total_seconds() == 45
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    # one run of each at a time: reconcile passes are never started beside a running one
    assert (training.concurrency_limit, reconcile.concurrency_limit) == (1, 1)
    cancel = ConcurrencyLimitStrategy.CANCEL_NEW
    assert reconcile.concurrency_options.collision_strategy == cancel
    assert training.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
    for deployment in (training, reconcile, monitoring):  # the same parameters, absolute path
        assert deployment.parameters == {
            "params_file": str((ROOT / "params.yaml").resolve()),
            "overrides": overrides,
            "task": "flight-delay",
        }


def test_the_default_is_nightly() -> None:
    assert load_params(ROOT / "params.yaml").schedule.training_cron == "0 2 * * *"


def test_an_unreachable_prefect_api_is_named(monkeypatch, tmp_path: Path) -> None:
    from maas.net import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    with pytest.raises(ScheduleError, match=f"PREFECT_API_URL={url} does not answer"):
        ensure_server(load_params(ROOT / "params.yaml"), tmp_path / "log")
