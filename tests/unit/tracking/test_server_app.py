"""The MLflow server's settings for webhook targets and team mode (the attacks themselves run
against a real server in tests/integration/test_webhook_targets.py)."""

from __future__ import annotations

import pytest

from maas.errors import TrackingServerError
from maas.tracking.server import receiver_url, server_environment
from maas.tracking.server_app import ALLOWED_URLS_ENV, normalized, refusal


@pytest.fixture
def team(small_params, tmp_path):
    deploy = small_params.deploy.model_copy(
        update={
            "webhook_listen": "127.0.0.1:8765",
            "webhook_secret_file": tmp_path / "state" / "webhook.secret",
        }
    )
    return small_params.model_copy(update={"deploy": deploy})


def test_only_the_receiver_is_allowed(monkeypatch, team) -> None:
    env = server_environment(team)
    assert env[ALLOWED_URLS_ENV] == "http://127.0.0.1:8765/webhook" == receiver_url(team)
    monkeypatch.setenv(ALLOWED_URLS_ENV, env[ALLOWED_URLS_ENV])
    assert refusal("HTTP://127.0.0.1:8765/webhook") is None  # the same URL, spelled otherwise
    for other in (
        "http://127.0.0.1:8766/webhook",
        "http://127.0.0.1:8765/admin",
        "http://x@127.0.0.1:8765/webhook",
        "http://127.0.0.1:8765/webhook?u=http://169.254.169.254/",
        "http://127.0.0.1:notaport/webhook",
        None,
    ):
        assert refusal(other) is not None, other
    assert normalized("http://127.0.0.1/webhook") == "http://127.0.0.1:80/webhook"


def test_no_receiver_allows_no_webhook(monkeypatch, team) -> None:
    deploy = team.deploy.model_copy(update={"webhook_listen": None})
    env = server_environment(team.model_copy(update={"deploy": deploy}))
    monkeypatch.setenv(ALLOWED_URLS_ENV, env[ALLOWED_URLS_ENV])
    assert refusal("http://127.0.0.1:8765/webhook") is not None


def test_team_mode_needs_the_owners_credentials_and_keeps_them_off_disk(monkeypatch, team) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(TrackingServerError, match="MLFLOW_TRACKING_USERNAME"):
        server_environment(team, auth=True)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "owner")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-password")
    env = server_environment(team, auth=True)
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] == "owner"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "a-long-password"
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # the server is no client of itself
    config = team.deploy.webhook_secret_file.parent / "mlflow-auth.ini"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(config)
    assert "a-long-password" not in config.read_text()
    assert "default_permission = READ" in config.read_text()
    assert config.stat().st_mode & 0o077 == 0
