"""`maas schedule` serves a scoring deployment per task only with scoring.schedule on."""

from __future__ import annotations

from maas.config import load_params
from tests.helpers import ROOT


def test_scoring_is_scheduled_only_when_asked() -> None:
    from maas.flows.schedule import deployments
    from maas.flows.scoring import scoring_deployment_name

    params_file = ROOT / "params.yaml"
    assert len(deployments(load_params(params_file), params_file, [])) == 3  # off by default
    overrides = ["scoring.schedule=true", "scoring.interval_s=600"]
    *_, scoring = deployments(load_params(params_file, overrides), params_file, overrides)
    assert scoring.name == scoring_deployment_name("flight-delay") == "score-flight-delay"
    assert scoring.schedules[0].schedule.interval.total_seconds() == 600
    assert scoring.parameters["overrides"] == overrides
    assert scoring.concurrency_limit == 1
