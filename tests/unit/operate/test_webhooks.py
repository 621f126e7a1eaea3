"""Webhook authentication: MLflow's own signer against our verifier."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from maas.net import free_port
from maas.operate.receiver import ReplayGuard, serve_webhooks, verify_delivery
from maas.tracking.webhooks import load_or_create_secret, sign

SECRET = "s3cret"
DATA = {"name": "flight-delay", "alias": "champion", "version": "3"}
BODY = json.dumps({"entity": "model_version_alias", "action": "created", "data": DATA})


def headers(delivery_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": str(timestamp),
        "X-MLflow-Signature": signature,
    }


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
    lower = {
        k.lower(): v
        for k, v in headers("d2", now, sign(SECRET, "d2", str(now), BODY.encode())).items()
    }
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
    assert "stale" in str(
        verify_delivery(SECRET, headers("d9", old, stale), BODY.encode(), guard, now)
    )
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


def test_a_non_ascii_signature_is_rejected_not_a_crash() -> None:
    """http.server hands header values over as latin-1 text: a signature with a non-ASCII
    character must be a rejected delivery (401), not a TypeError in hmac.compare_digest."""
    guard, now = ReplayGuard(), 1_700_000_000
    odd = headers("d1", now, "v1,\xe9\xe9")
    assert verify_delivery(SECRET, odd, BODY.encode(), guard, now) == "bad signature"


def test_an_empty_secret_is_refused(tmp_path: Path, monkeypatch) -> None:
    """HMAC with an empty key authenticates anyone who knows that: an empty secret file (or
    $MAAS_WEBHOOK_SECRET set to blanks) is an error naming the file, never a key."""
    from maas.errors import WebhookSecretError

    monkeypatch.delenv("MAAS_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "webhook.secret"
    path.write_text("\n")
    with pytest.raises(WebhookSecretError, match="webhook.secret is empty"):
        load_or_create_secret(path)
    monkeypatch.setenv("MAAS_WEBHOOK_SECRET", "  ")
    with pytest.raises(WebhookSecretError, match="MAAS_WEBHOOK_SECRET is blank"):
        load_or_create_secret(tmp_path / "other.secret")
    with pytest.raises(WebhookSecretError):
        serve_webhooks(f"127.0.0.1:{free_port()}", "", "flight-delay", lambda event: None)


def raw_request(port: int, head: bytes, body: bytes = b"", wait_s: float = 5) -> bytes:
    """Send bytes, keep the connection open, return what the server says within `wait_s`."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(head + body)
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"-1", b"400"), (b"abc", b"400"), (b"1e3", b"400"), (b"99999999999999999999", b"413")],
)
def test_a_bad_content_length_is_refused_before_reading(length: bytes, status: bytes) -> None:
    """A negative Content-Length passed the size check and `rfile.read(-1)` read until the
    client closed (unbounded memory, no timeout): every bad length gets 400 at once."""
    port = free_port()
    server = serve_webhooks(f"127.0.0.1:{port}", SECRET, "flight-delay", lambda event: None)
    try:
        head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
        answer = raw_request(port, head, b"{" * 100)
        assert answer.split(b" ")[1] == status, answer
    finally:
        server.shutdown()


def test_a_slow_client_is_cut_off() -> None:
    """A client that declares a body and never sends it does not hold a receiver thread
    forever: the socket times out."""
    from maas.operate import receiver

    port = free_port()
    server = serve_webhooks(f"127.0.0.1:{port}", SECRET, "flight-delay", lambda event: None)
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=receiver.READ_TIMEOUT_S + 10
        ) as sock:
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            started = time.monotonic()
            assert sock.recv(4096) == b""  # closed by the server, nothing answered
            assert time.monotonic() - started < receiver.READ_TIMEOUT_S + 5
    finally:
        server.shutdown()


def test_slowloris_clients_are_cut_at_the_deadline_and_capped() -> None:
    """Issue 27 item 10, the attack: connections that send a byte every 0.3 s never trip the
    per-read timeout. Each is cut when the whole-request deadline passes; beyond the cap a
    connection gets 503 at once; a real delivery is answered afterwards."""
    port, cap, deadline = free_port(), 4, 1.0
    server = serve_webhooks(
        f"127.0.0.1:{port}",
        SECRET,
        "flight-delay",
        lambda event: None,
        deadline_s=deadline,
        max_connections=cap,
    )
    socks = []
    try:
        for _ in range(cap):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
            socks.append(sock)
        time.sleep(0.2)  # the cap's connections are being served
        assert raw_request(port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        started, open_ = time.monotonic(), list(socks)
        while open_ and time.monotonic() - started < deadline + 5:
            time.sleep(0.3)
            for sock in list(open_):
                try:
                    sock.sendall(b"{")  # one byte: always within the per-read timeout
                except OSError:
                    open_.remove(sock)
                    continue
                sock.setblocking(False)
                try:
                    if sock.recv(1) == b"":
                        open_.remove(sock)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.remove(sock)
                sock.setblocking(True)
        assert not open_, f"{len(open_)} trickling connections still open"
        assert time.monotonic() - started < deadline + 2
        now = int(time.time())
        signature = _generate_hmac_signature(SECRET, "d-slow", str(now), BODY)
        head = (
            "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers("d-slow", now, signature).items())
            + f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode()
        assert raw_request(port, head, BODY.encode()).split(b" ")[1] == b"202"
    finally:
        for sock in socks:
            sock.close()
        server.shutdown()
