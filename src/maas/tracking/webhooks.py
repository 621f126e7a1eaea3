"""The MLflow webhook contract between the tracking server and the controller: which events,
the shared secret, and how a delivery is signed.

MLflow (3.3+) signs each delivery: `X-MLflow-Signature: v1,<base64 HMAC-SHA256 of
"{delivery_id}.{timestamp}.{raw body}">` with the webhook's secret. `maas ui` registers the
webhook (`maas.tracking.server`); the controller's receiver (`maas.operate.receiver`) checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from maas.errors import WebhookSecretError
from maas.files import required_secret

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
ALIAS_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")
SECRET_ENV = "MAAS_WEBHOOK_SECRET"


def load_or_create_secret(path: Path) -> str:
    """The shared webhook secret: $MAAS_WEBHOOK_SECRET, else a file made once (mode 0600)."""
    return required_secret(path, SECRET_ENV, WebhookSecretError)


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
