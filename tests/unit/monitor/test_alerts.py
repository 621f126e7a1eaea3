"""The alert webhook: a Slack-compatible JSON POST, signed like MLflow's webhooks; a receiver
that is down or refuses is reported, never raised."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

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
        assert post_alert(configured, body) == f"{url} answered 500"
    finally:
        server.shutdown()
    down = f"http://127.0.0.1:{free_port()}/hook"
    settings = settings.model_copy(update={"alert_webhook": down})
    problem = post_alert(params.model_copy(update={"monitoring": settings}), body, timeout_s=2)
    assert problem is not None and problem.startswith(f"{down} unreachable")
