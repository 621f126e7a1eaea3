"""Webhook authentication: MLflow's own signer against our verifier."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mlflow.webhooks.delivery import _generate_hmac_signature

from maas.operate.receiver import ReplayGuard, verify_delivery
from maas.tracking.webhooks import load_or_create_secret, sign

SECRET = "s3cret"
DATA = {"name": "flight-delay", "alias": "champion", "version": "3"}
BODY = json.dumps({"entity": "model_version_alias", "action": "created", "data": DATA})


def headers(delivery_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": str(timestamp),
            "X-MLflow-Signature": signature}  # fmt: skip


def test_our_signature_is_mlflows() -> None:
    assert sign(SECRET, "d1", "1700000000", BODY.encode()) == _generate_hmac_signature(
        SECRET, "d1", "1700000000", BODY
    )


def test_authentic_fresh_delivery_passes_once() -> None:
    guard, now = ReplayGuard(), 1_700_000_000
    signature = _generate_hmac_signature(SECRET, "d1", str(now), BODY)
    assert verify_delivery(SECRET, headers("d1", now, signature), BODY.encode(), guard, now) is None
    again = verify_delivery(SECRET, headers("d1", now, signature), BODY.encode(), guard, now + 1)
    assert again == "replayed delivery id"
    lower = {k.lower(): v for k, v in headers("d2", now, sign(SECRET, "d2", str(now),
                                                             BODY.encode())).items()}  # fmt: skip
    assert verify_delivery(SECRET, lower, BODY.encode(), guard, now) is None


def test_forged_tampered_stale_and_unsigned_deliveries_are_rejected() -> None:
    guard, now = ReplayGuard(), 1_700_000_000
    good = _generate_hmac_signature(SECRET, "d1", str(now), BODY)
    forged = _generate_hmac_signature("not-the-secret", "d1", str(now), BODY)
    assert verify_delivery(SECRET, headers("d1", now, forged), BODY.encode(), guard, now) == (
        "bad signature"
    )
    tampered = BODY.replace('"3"', '"1"').encode()
    assert verify_delivery(SECRET, headers("d1", now, good), tampered, guard, now) == (
        "bad signature"
    )
    old = now - 3600
    stale = _generate_hmac_signature(SECRET, "d9", str(old), BODY)
    assert "stale" in str(verify_delivery(SECRET, headers("d9", old, stale), BODY.encode(),
                                          guard, now))  # fmt: skip
    assert verify_delivery(SECRET, {}, BODY.encode(), guard, now) == "missing signature headers"


def test_replay_guard_memory_is_bounded() -> None:
    guard = ReplayGuard(limit=3)
    for index in range(10):
        assert guard.first_time(f"id{index}", 1000.0)
    assert len(guard.seen) == 3


def test_secret_file_is_created_once_and_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MAAS_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "webhook.secret"
    first = load_or_create_secret(path)
    assert len(first) >= 32 and load_or_create_secret(path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    monkeypatch.setenv("MAAS_WEBHOOK_SECRET", "from-env")
    assert load_or_create_secret(path) == "from-env"
