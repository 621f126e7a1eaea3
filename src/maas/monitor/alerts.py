"""Alerts of the monitoring policy: a log line, an audit event, and (with
`monitoring.alert_webhook`) a Slack-compatible JSON POST signed like MLflow's webhooks
(HMAC-SHA256 over `<delivery id>.<timestamp>.<body>`, the key from `alert_secret_file` or
$MAAS_ALERT_SECRET). A webhook that fails is reported in the audit event; it never stops the
monitoring run."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from maas.config import Params
from maas.errors import AlertSecretError
from maas.files import required_secret
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

    url = params.monitoring.alert_webhook
    if not url:
        return None
    try:
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
    try:
        response = httpx.post(url, content=payload, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as error:
        return f"{url} unreachable: {error}"
    if response.status_code >= 300:
        return f"{url} answered {response.status_code}"
    return None
