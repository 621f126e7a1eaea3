"""The alert webhook: a Slack-compatible JSON POST, signed like MLflow's webhooks; a receiver
that is down or refuses is reported, never raised."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from maas.config import Params
from maas.monitor.alerts import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    alert_body,
    post_alert,
)
from maas.net import free_port
from maas.tracking.webhooks import sign


def _receiver(status: int) -> tuple[HTTPServer, list[tuple[dict[str, str], bytes]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_the_alert_is_posted_signed_and_slack_compatible(params: Params, tmp_path: Path) -> None:
    server, received = _receiver(200)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    secret_file = tmp_path / "alert.secret"
    settings = params.monitoring.model_copy(
        update={"alert_webhook": url, "alert_secret_file": secret_file}
    )
    configured = params.model_copy(update={"monitoring": settings})
    body = alert_body(configured, "2013-08", "1", ["realized roc_auc 0.6898 is 0.0457 below"])
    try:
        assert post_alert(configured, body) is None
    finally:
        server.shutdown()
    ((headers, raw),) = received
    sent = json.loads(raw)
    assert sent["text"].startswith("maas: flight-delay v1 breached its monitoring policy in")
    assert sent["reasons"] == ["realized roc_auc 0.6898 is 0.0457 below"]
    secret = secret_file.read_text().strip()  # made once, 0600
    assert secret_file.stat().st_mode & 0o777 == 0o600
    expected = sign(secret, headers[DELIVERY_ID_HEADER], headers[TIMESTAMP_HEADER], raw)
    assert headers[SIGNATURE_HEADER] == expected


def test_a_receiver_that_refuses_or_is_down_is_reported(params: Params, tmp_path: Path) -> None:
    server, _ = _receiver(500)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    settings = params.monitoring.model_copy(
        update={"alert_webhook": url, "alert_secret_file": tmp_path / "s"}
    )
    configured = params.model_copy(update={"monitoring": settings})
    body = alert_body(configured, "2013-08", "1", ["x"])
    try:
        # the URL's path is the webhook's secret: never in what the audit event records
        assert (
            post_alert(configured, body)
            == f"http://127.0.0.1:{server.server_port}/*** answered 500"
        )
    finally:
        server.shutdown()
    down = f"http://127.0.0.1:{free_port()}/hook"
    settings = settings.model_copy(update={"alert_webhook": down})
    problem = post_alert(params.model_copy(update={"monitoring": settings}), body, timeout_s=2)
    assert problem is not None and problem.startswith(f"{down[: -len('/hook')]}/*** unreachable")
    assert "/hook" not in problem


def test_the_webhook_url_is_a_secret_read_by_reference(
    params: Params, tmp_path: Path, monkeypatch
) -> None:
    """Issue 27.11: a Slack-style URL carries its key in the path. It is read from the
    environment or a 0600 file, and a failure names the server without the path."""
    from maas.errors import AlertSecretError
    from maas.monitor.alerts import webhook_url

    secret_url = f"http://127.0.0.1:{free_port()}/services/T000/B000/s3cr3t-path"
    monkeypatch.setenv("TEAM_ALERT_URL", secret_url)
    assert webhook_url("env:TEAM_ALERT_URL") == secret_url
    with pytest.raises(AlertSecretError, match=r"\$NOT_SET_HERE, which is not set"):
        webhook_url("env:NOT_SET_HERE")
    kept = tmp_path / "alert.url"
    kept.write_text(secret_url + "\n")
    kept.chmod(0o644)
    with pytest.raises(AlertSecretError, match="others may read it: chmod 600"):
        webhook_url(f"file:{kept}")
    kept.chmod(0o600)
    assert webhook_url(f"file:{kept}") == secret_url
    settings = params.monitoring.model_copy(
        update={"alert_webhook": "env:TEAM_ALERT_URL", "alert_secret_file": tmp_path / "s"}
    )
    configured = params.model_copy(update={"monitoring": settings})
    problem = post_alert(configured, alert_body(configured, "2013-08", "1", ["x"]), timeout_s=2)
    assert problem is not None and "unreachable" in problem and "s3cr3t" not in problem


def test_urls_and_dsns_are_shown_without_their_secrets() -> None:
    from maas.redact import redact_text, redact_url

    assert redact_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/***"
    assert redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    dsn = "postgresql://maas:hunter2@db.internal:5432/mlflow"
    assert redact_url(dsn) == "postgresql://maas@db.internal:5432/***"
    error = f"could not connect to {dsn}: connection refused (also tried mysql://u:pw@h/x)"
    shown = redact_text(error)
    assert "hunter2" not in shown and ":pw@" not in shown and "maas:***@db.internal" in shown
    assert redact_text("token abc123 failed", ["abc123"]) == "token *** failed"
