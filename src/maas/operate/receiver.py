"""The controller's webhook receiver: signature, freshness and replay checks, then a wake-up.

A delivery with a bad or missing signature, a timestamp outside the tolerance, or a delivery
id already seen gets 401 and changes nothing. A valid alias event only wakes the reconcile
loop: the loop compares `champion` with what serves, so duplicate or out-of-order deliveries
are harmless.

Slow clients are bounded twice: every read times out after `READ_TIMEOUT_S`, and a whole
request (headers, body, answer) must be done within `deadline_s`, or its connection is cut
(a byte every few seconds kept a connection open forever under the per-read timeout alone).
At most `max_connections` are served at once; one more is answered 503 and closed at once.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maas.errors import ConfigError, WebhookSecretError
from maas.net import parse_address
from maas.tracking.webhooks import (
    ALIAS_EVENTS,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

log = logging.getLogger(__name__)

TOLERANCE_S = 300
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 10  # a client that stops sending loses its connection after this long
DEADLINE_S = 10.0  # a whole request, however it trickles in (deploy.webhook_deadline_s)
MAX_CONNECTIONS = 32  # served at once; more get 503 (deploy.webhook_max_connections)
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ReplayGuard:
    """Delivery ids seen within the freshness window (bounded memory)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.seen: OrderedDict[str, float] = OrderedDict()
        self.limit = limit
        self.lock = threading.Lock()

    def first_time(self, delivery_id: str, now: float) -> bool:
        with self.lock:
            while self.seen and (
                len(self.seen) >= self.limit
                or next(iter(self.seen.values())) < now - 2 * TOLERANCE_S
            ):
                self.seen.popitem(last=False)
            if delivery_id in self.seen:
                return False
            self.seen[delivery_id] = now
            return True


def verify_delivery(
    secret: str, headers: Mapping[str, str], body: bytes, guard: ReplayGuard, now: float
) -> str | None:
    """None for an authentic, fresh, first delivery; else why it is rejected."""
    lowered = {key.lower(): value for key, value in headers.items()}  # names are case-blind
    delivery_id = lowered.get(DELIVERY_ID_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (delivery_id and timestamp and signature):
        return "missing signature headers"
    if not signature.isascii() or not hmac.compare_digest(
        sign(secret, delivery_id, timestamp, body), signature
    ):
        return "bad signature"
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return "bad timestamp"
    if age > TOLERANCE_S:
        return f"stale delivery ({age:.0f}s old)"
    if not guard.first_time(delivery_id, now):
        return "replayed delivery id"
    return None


class _BoundedServer(ThreadingHTTPServer):
    """At most `max_connections` connections in service; one more is answered 503 and
    closed by the accepting thread, without a thread of its own."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def serve_webhooks(
    address: str,
    secret: str,
    model_names: str | Collection[str],
    on_alias_event: Callable[[dict], None],
    *,
    deadline_s: float = DEADLINE_S,
    max_connections: int = MAX_CONNECTIONS,
) -> ThreadingHTTPServer:
    """An HTTP receiver on `address` (POST /webhook) in a daemon thread. Bodies are bounded
    (a declared, valid Content-Length up to MAX_BODY), reads time out, a whole request must be
    done within `deadline_s`, and at most `max_connections` are served at once."""
    if not secret.strip():
        raise WebhookSecretError("the webhook secret is empty: refusing to verify with it")
    guard = ReplayGuard()
    names = {model_names} if isinstance(model_names, str) else set(model_names)

    class Handler(BaseHTTPRequestHandler):
        timeout = min(READ_TIMEOUT_S, deadline_s)  # for every read (StreamRequestHandler)

        def setup(self) -> None:
            super().setup()
            # the whole request's deadline: the connection is shut when it passes, which ends
            # a read in progress however slowly its bytes come
            self.deadline = threading.Timer(deadline_s, self._cut)
            self.deadline.daemon = True
            self.deadline.start()

        def _cut(self) -> None:
            log.warning(
                "webhook: a request from %s exceeded %.0fs", self.client_address[0], deadline_s
            )
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def finish(self) -> None:
            self.deadline.cancel()
            with contextlib.suppress(OSError):  # a cut connection cannot flush
                super().finish()

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/webhook":
                return self._reply(404, {"error": "POST /webhook"})
            declared = self.headers.get("Content-Length", "")
            if not declared.isdigit() or not declared.isascii():
                return self._reply(400, {"error": "a Content-Length (bytes) is required"})
            if int(declared) > MAX_BODY:
                return self._reply(413, {"error": "body too large"})
            body = self.rfile.read(int(declared))
            problem = verify_delivery(secret, dict(self.headers.items()), body, guard, time.time())
            if problem is not None:
                log.warning("webhook rejected: %s", problem)
                return self._reply(401, {"error": problem})
            try:
                event = json.loads(body)
                kind = f"{event['entity']}.{event['action']}"
                data = event.get("data") or {}
            except (ValueError, KeyError, TypeError):
                return self._reply(400, {"error": "not an MLflow webhook payload"})
            if kind in ALIAS_EVENTS and data.get("name") in names:
                log.info(
                    "webhook: %s %s@%s -> v%s",
                    kind,
                    data.get("name"),
                    data.get("alias"),
                    data.get("version"),
                )
                on_alias_event(event)
                return self._reply(202, {"status": "reconcile scheduled"})
            return self._reply(200, {"status": "ignored", "event": kind})

        def _reply(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    if deadline_s <= 0 or max_connections < 1:
        raise ConfigError(
            f"webhook receiver limits must be positive: deadline_s={deadline_s}, "
            f"max_connections={max_connections}"
        )
    server = _BoundedServer(parse_address(address), Handler, max_connections)
    threading.Thread(target=server.serve_forever, daemon=True, name="webhooks").start()
    return server
