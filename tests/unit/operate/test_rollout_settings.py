"""deploy.rollout: refused at load with the key named; `maas rollout` with nothing in progress;
the analysis's statistics on tiny numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maas.cli import app
from maas.config import load_params
from maas.config.rollout import RolloutParams
from maas.errors import ConfigError
from maas.operate.rollout_analysis import (
    cumulative,
    error_check,
    latency_check,
    parse_histogram,
    quantile,
    subtract,
)
from tests.helpers import ROOT

SETTINGS = RolloutParams.model_validate({"min_requests": 100})


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("deploy.rollout.strategy=canary", "deploy.rollout.strategy"),
        ("deploy.rollout.steps=[5, 2, 100]", "deploy.rollout.steps"),
        ("deploy.rollout.steps=[5, 50]", "deploy.rollout.steps"),
        ("deploy.rollout.steps=[0, 100]", "deploy.rollout.steps"),
        ("deploy.rollout.steps=[]", "deploy.rollout.steps"),
        ("deploy.rollout.steps=[5, shadow, 100]", "deploy.rollout.steps"),
        ("deploy.rollout.min_requests=0", "deploy.rollout.min_requests"),
        ("deploy.rollout.alpha=1.5", "deploy.rollout.alpha"),
        ("deploy.rollout.max_p99_ratio=0.5", "deploy.rollout.max_p99_ratio"),
        ("deploy.rollout.sticky=X User", "deploy.rollout.sticky"),
    ],
)
def test_an_invalid_rollout_section_is_refused_with_its_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"  {named}: "):
        load_params(ROOT / "params.yaml", [override])


def test_progressive_needs_the_local_gateway_and_immediate_is_the_default() -> None:
    assert load_params(ROOT / "params.yaml").deploy.rollout.strategy == "immediate"
    with pytest.raises(ConfigError, match="progressive needs deploy.target local"):
        load_params(
            ROOT / "params.yaml",
            ["deploy.rollout.strategy=progressive", "deploy.target=kubernetes"],
        )
    settings = load_params(
        ROOT / "params.yaml",
        ["deploy.rollout.strategy=progressive", "deploy.rollout.sticky=X-User"],
    ).deploy.rollout
    assert settings.sticky == "X-User" and settings.steps == [5, 25, 50, 100]


def test_rollout_commands_with_nothing_in_progress_say_so(tmp_path: Path) -> None:
    sets = ["--set", f"deploy.state_dir={tmp_path / 'deploy'}"]
    params = ["-p", str(ROOT / "params.yaml")]
    for action in ("promote", "abort", "pause", "resume"):
        result = CliRunner().invoke(app, ["rollout", action, *params, *sets])
        assert result.exit_code == 1, result.output
        assert f"no rollout in progress, nothing to {action}" in result.output
    assert not (tmp_path / "deploy").exists()  # nothing made for a refusal
    shown = CliRunner().invoke(app, ["rollout", "status", *params, *sets])
    assert shown.exit_code == 0 and "no rollout in progress" in shown.output


def test_errors_roll_back_only_when_significant_and_large() -> None:
    # 3 errors in 40 vs none in 400 (Fisher p ~ 0.0007): before min_requests a check fails
    # only at alpha / 100 (each pass looks again), so the step waits for more requests ...
    early = error_check((40, 3), (400, 0), SETTINGS)
    assert early.passed is None and 0.0005 < early.numbers["p_value"] < 0.001
    # ... a plainly broken version fails at once, and the complete sample at alpha
    assert error_check((10, 10), (400, 0), SETTINGS).passed is False
    assert error_check((100, 4), (1000, 1), SETTINGS).passed is False
    # 1 in 40 vs 0 in 400: not significant, and too few requests to pass: the step waits
    assert error_check((40, 1), (400, 0), SETTINGS).passed is None
    # as many errors as the champion's rate: passes once enough requests were answered
    assert error_check((200, 2), (2000, 20), SETTINGS).passed is True


def test_latency_fails_a_plainly_slow_version_on_few_requests_and_not_noise() -> None:
    fast = {"0.01": 0.0, "0.05": 990.0, "0.1": 1000.0, "+Inf": 1000.0}
    assert math.isclose(quantile(0.99, fast), 0.05)
    assert math.isclose(cumulative(0.03, fast), 495.0)
    slow = {"0.01": 0.0, "0.05": 0.0, "0.1": 0.0, "1.0": 12.0, "+Inf": 12.0}
    check = latency_check(slow, fast, SETTINGS)
    assert check.passed is False and check.numbers["slower"] == 12
    one_slow = {"0.01": 0.0, "0.05": 39.0, "0.1": 39.0, "1.0": 40.0, "+Inf": 40.0}
    assert latency_check(one_slow, fast, SETTINGS).passed is None  # noise: waits
    same = {bound: count / 5 for bound, count in fast.items()}
    assert latency_check(same, fast, SETTINGS).passed is True
    assert subtract(fast, slow) == fast  # counts that went down: a restarted service


def test_the_histogram_is_read_from_bentoml_metrics_text() -> None:
    text = """# TYPE bentoml_api_server_request_duration_seconds histogram
bentoml_api_server_request_duration_seconds_bucket{endpoint="/predict",http_response_code="200",le="0.005"} 3.0
bentoml_api_server_request_duration_seconds_bucket{endpoint="/predict",http_response_code="200",le="+Inf"} 5.0
bentoml_api_server_request_duration_seconds_bucket{endpoint="/predict",http_response_code="500",le="0.005"} 1.0
bentoml_api_server_request_duration_seconds_bucket{endpoint="/predict",http_response_code="500",le="+Inf"} 1.0
bentoml_api_server_request_duration_seconds_bucket{endpoint="/metadata",http_response_code="200",le="+Inf"} 9.0
bentoml_api_server_request_duration_seconds_count{endpoint="/predict",http_response_code="200"} 5.0
"""  # noqa: E501
    assert parse_histogram(text) == {"0.005": 4.0, "+Inf": 6.0}
