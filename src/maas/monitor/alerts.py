"""Alerts of the monitoring policy: a log line, an audit event, and (with
`monitoring.alert_webhook`) a Slack-compatible JSON POST signed like MLflow's webhooks
(HMAC-SHA256 over `<delivery id>.<timestamp>.<body>`, the key from `alert_secret_file` or
$MAAS_ALERT_SECRET). A webhook that fails is reported in the audit event; it never stops the
monitoring run. The URL is itself a secret (a Slack webhook's path is its key): it is read by
reference (`env:NAME`, `file:PATH`) and shown only redacted (`maas.redact`)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from maas.config import Params
from maas.errors import AlertSecretError
from maas.files import required_secret
from maas.redact import redact_text, redact_url
from maas.tracking.webhooks import sign

log = logging.getLogger(__name__)

SECRET_ENV = "MAAS_ALERT_SECRET"
SIGNATURE_HEADER = "X-Maas-Signature"
DELIVERY_ID_HEADER = "X-Maas-Delivery-Id"
TIMESTAMP_HEADER = "X-Maas-Timestamp"


def alert_body(
    params: Params, period: str, version: str | None, reasons: list[str]
) -> dict[str, Any]:
    model = params.registry.model_name
    text = f"maas: {model} v{version} breached its monitoring policy in {period}: " + "; ".join(
        reasons
    )
    return {"text": text, "model": model, "version": version, "period": period, "reasons": reasons}


def post_alert(params: Params, body: dict[str, Any], timeout_s: float = 10) -> str | None:
    """POST the alert to monitoring.alert_webhook; None on a 2xx, else what went wrong."""
    import httpx

    if not params.monitoring.alert_webhook:
        return None
    try:
        url = webhook_url(params.monitoring.alert_webhook)
        secret = required_secret(params.monitoring.alert_secret_file, SECRET_ENV, AlertSecretError)
    except (AlertSecretError, OSError) as error:
        return f"not sent: {error}"
    payload = json.dumps(body).encode()
    delivery, stamp = uuid.uuid4().hex, str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, delivery, stamp, payload),
    }
    shown = redact_url(url)
    try:
        response = httpx.post(url, content=payload, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as error:
        return f"{shown} unreachable: {redact_text(str(error), [url])}"
    if response.status_code >= 300:
        return f"{shown} answered {response.status_code}"
    return None


def webhook_url(setting: str) -> str:
    """monitoring.alert_webhook resolved: `env:NAME` ($NAME), `file:PATH` (a file only its
    owner may read), else the URL itself."""
    import os
    import stat
    from pathlib import Path

    if setting.startswith("env:"):
        name = setting[4:]
        if not os.environ.get(name, "").strip():
            raise AlertSecretError(f"monitoring.alert_webhook names ${name}, which is not set")
        return os.environ[name].strip()
    if setting.startswith("file:"):
        path = Path(setting[5:])
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AlertSecretError(
                f"{path} holds the alert webhook URL but others may read it: chmod 600 {path}"
            )
        return path.read_text().strip()
    return setting
