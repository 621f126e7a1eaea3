"""The attack the trust boundary stops: a registry writer (tags and artifacts, no gate key)
swaps the champion's recorded serving code and fixes its digest tags. Training's champion
re-scoring and the monitor must not run it: its signed verdict no longer verifies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from maas.errors import UntrustedVersionError
from maas.monitor.judge import open_champion
from maas.pipeline.evaluation.champion import champion_score
from maas.tracking import serving_code
from maas.tracking.registry import (
    download_serving_artifacts,
    download_serving_code,
    logged_model_id,
)
from tests.helpers import signed_champion


@pytest.fixture
def project(tmp_path, small_params):
    """A signed champion, registered as the register stage does it."""
    params, client, number, frame, _ = signed_champion(tmp_path, small_params, "trust")
    test = frame.assign(label=(frame["arr_delay"] >= 15).astype(int))
    return params, client, number, test


def tamper_serving_code(client, name: str, number: str, marker: Path) -> None:
    """What a registry writer can do with the REST API or the artifact store's own
    credentials: rewrite the recorded inference module in place, then set the digest tag the
    download checks against to the new code's digest."""
    version = client.get_model_version(name, number)
    location = client.get_logged_model(logged_model_id(version)).artifact_location
    context = Path(location.removeprefix("file://")) / "artifacts" / serving_code.ARTIFACT
    inference = context / "maas/serving/inference.py"
    payload = f"\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    inference.write_text(inference.read_text() + payload)  # runs on import
    digest = serving_code.code_digest(context / "bentofile.yaml", context)
    client.set_model_version_tag(name, number, serving_code.DIGEST_TAG, digest)


def test_a_champion_whose_code_was_swapped_is_unscored_and_never_run(project, tmp_path):
    params, client, number, test = project
    name = params.registry.model_name
    assert "roc_auc" in champion_score(
        params.registry, test, ["2014-01"], verdict_key_file=params.promotion.verdict_key_file
    )  # the signed champion is scored with its recorded code
    marker = tmp_path / "attacker-code-ran"
    tamper_serving_code(client, name, number, marker)
    scored = champion_score(
        params.registry, test, ["2014-01"], verdict_key_file=params.promotion.verdict_key_file
    )
    assert not marker.exists()
    assert scored is not None and "roc_auc" not in scored
    assert "signature" in scored["unscored"]


def test_the_monitor_never_runs_a_champion_whose_code_was_swapped(project, tmp_path):
    params, client, number, test = project
    marker = tmp_path / "attacker-code-ran"
    tamper_serving_code(client, params.registry.model_name, number, marker)
    with pytest.raises(UntrustedVersionError, match="signature"):
        champion = open_champion(
            params, client, tmp_path / "monitor", params.promotion.verdict_key_file
        )
        assert champion is not None
        champion.score(test)  # what a monitor pass does next
    assert not marker.exists()


def test_recorded_code_runs_without_the_parents_secrets(monkeypatch) -> None:
    monkeypatch.setenv("MAAS_GATE_KEY", "k")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "u")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    kept = serving_code.child_environment(os.environ)
    assert not {"MAAS_GATE_KEY", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"} & set(kept)
    assert not {"MLFLOW_TRACKING_USERNAME", "GITHUB_TOKEN"} & set(kept)
    assert kept["PATH"] == os.environ["PATH"] and kept["LC_ALL"] == "C.UTF-8"


def test_the_child_that_runs_recorded_code_gets_no_secret(project, tmp_path, monkeypatch):
    """score_with's child process, as it runs: the recorded module reports its environment."""
    params, client, number, test = project
    version = client.get_model_version(params.registry.model_name, number)
    models = download_serving_artifacts(client, version, tmp_path / "model")
    context = download_serving_code(client, version, tmp_path / "code")
    seen = tmp_path / "environment.json"
    inference = context / "maas/serving/inference.py"
    report = f"\nimport json, os\nopen({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    inference.write_text(inference.read_text() + report)
    monkeypatch.setenv("MAAS_GATE_KEY", "the-gate-key")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "a-token")
    serving_code.score_with(context, models, test.head(5))
    environment = json.loads(seen.read_text())
    assert "MAAS_GATE_KEY" not in environment and "MLFLOW_TRACKING_TOKEN" not in environment
    assert environment["PATH"] == os.environ["PATH"]


def test_the_mlflow_server_gets_no_gate_key(monkeypatch, small_params, tmp_path) -> None:
    """`maas ui` starts `mlflow server` with this process's environment: not with the key that
    signs verdicts (the server never signs; a plugin or a bug in it could leak it)."""
    from maas.tracking.server import server_environment
    from maas.tracking.verdict import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "a-secret-gate-key")
    monkeypatch.setenv("MAAS_SOMETHING_ELSE", "kept")
    deploy = small_params.deploy.model_copy(update={"webhook_secret_file": tmp_path / "w.secret"})
    env = server_environment(small_params.model_copy(update={"deploy": deploy}))
    assert KEY_ENV not in env and "a-secret-gate-key" not in env.values()
    assert env["MAAS_SOMETHING_ELSE"] == "kept"


def test_no_secret_reaches_a_servers_argv_environment_or_an_error(
    monkeypatch, small_params, tmp_path
) -> None:
    """Issue 27.11: a DSN with its password was on `mlflow server`'s argv (`ps` shows it to
    every local user) and in connection errors; the Prefect server got the whole environment,
    the gate key included."""
    import subprocess

    from maas.errors import RegistryError
    from maas.operate.prefect_server import server_environment as prefect_environment
    from maas.tracking import server
    from maas.tracking.store import connect

    dsn = "postgresql://maas:hunter2@127.0.0.1:1/mlflow"
    started: dict = {}

    class Recorded:
        def __init__(self, argv, env, **kwargs):
            started.update(argv=argv, env=env)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    deploy = small_params.deploy.model_copy(update={"webhook_secret_file": tmp_path / "w.secret"})
    params = small_params.model_copy(update={"deploy": deploy})
    server.start_server(params, tmp_path / "mlflow.log", backend_store_uri=dsn)
    assert not any("hunter2" in arg for arg in started["argv"])
    assert started["env"]["MLFLOW_BACKEND_STORE_URI"] == dsn
    monkeypatch.setenv("MAAS_GATE_KEY", "a-secret-gate-key")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "owner-password")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "sqlite+aiosqlite:///p.db")
    import os

    given = prefect_environment(os.environ)
    assert "MAAS_GATE_KEY" not in given and "MLFLOW_TRACKING_PASSWORD" not in given
    assert given["PREFECT_API_DATABASE_CONNECTION_URL"] == "sqlite+aiosqlite:///p.db"
    # an unreachable tracking server with credentials in its URI (MLflow's SQL store retries
    # a database for minutes; the REST client's retries can be turned off)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    server_uri = "http://maas:hunter2@127.0.0.1:1"
    registry = params.registry.model_copy(update={"tracking_uri": server_uri})
    with pytest.raises(RegistryError) as refused:
        connect(registry, retries=1, backoff_s=0)
    assert "hunter2" not in str(refused.value) and "maas:***@127.0.0.1" in str(refused.value)
