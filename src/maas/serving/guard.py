"""ASGI middleware in front of the BentoML app: bearer auth, body limits, the /predict fast
path, and a truthful OpenAPI document."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

API_ROUTES = ["/predict", "/metadata"]
PREFIX = r"/models/[A-Za-z0-9._-]+(/versions/[0-9]+)?"  # what the gateway says it serves at
TOKEN_ENV = "MAAS_API_TOKEN"

# The body of the API request that BentoML's own handler answers, as the guard passed it on
_RECEIVED: ContextVar[list[bytes] | None] = ContextVar("maas_received_body", default=None)


def received_body() -> bytes | None:
    """The body of the API request being answered by BentoML's handler, as the client sent
    it (the handler hands the API only the fields the model reads: the prediction log needs
    the others, a record's keys); None outside a request the guard passed on."""
    chunks = _RECEIVED.get()
    return None if chunks is None else b"".join(chunks)


class ApiGuard:
    """ASGI middleware in front of the BentoML app (one layer, a few comparisons a request):

    - Bearer auth: with $MAAS_API_TOKEN set where the service starts (`podman run -e
      MAAS_API_TOKEN`), /predict and /metadata need `Authorization: Bearer <token>`; the
      token is never in the image, the Bento or a tag. Health probes (/livez, /readyz) and
      /metrics stay open for orchestrators and scrapers.
    - A multipart body to an API route gets 415 (BentoML answered 500 when the boundary was
      missing: found by schemathesis).
    - Bodies are bounded: a declared Content-Length over `max_body` gets 413 before anything
      is read; a chunked body is counted as it arrives and cut off with 413 at the limit, so
      a huge request costs at most `max_body` bytes of memory.
    - Fast path: a POST /predict with a declared JSON body is answered by `fast_predict`
      (pydantic-core validates the raw bytes; no BentoML request/response handling). It
      sits inside BentoML's own middlewares (metrics, timeout) and answers exactly what the
      API answers; any body it does not accept is replayed to BentoML's handler, so every
      error is still BentoML's (its speed-up: docs/serving.md). A body BentoML's handler
      answers is kept for it as `received_body`, so both paths log the body as sent.
    - /docs.json tells the truth: OpenAPI 3.1 (pydantic's schemas are JSON Schema 2020-12:
      numeric `exclusiveMinimum`, `type: null`), and the 400 body's `detail` is pydantic's
      list of errors naming each field, not the string BentoML 1.4 declares. Behind the
      gateway (`X-Forwarded-Prefix: /models/<name>`) its `servers` entry is that prefix, so
      the document's paths are the ones the gateway serves.
    """

    def __init__(
        self,
        app: Any,
        token: str | None = None,
        max_body: int = 4 << 20,
        fast: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body
        self.fast = fast

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path in API_ROUTES:
            headers = dict(scope["headers"])
            if self.expected is not None and not hmac.compare_digest(
                headers.get(b"authorization", b""), self.expected
            ):
                challenge = [(b"www-authenticate", b'Bearer realm="maas"')]
                return await _reply(send, 401, "missing or invalid bearer token", challenge)
            if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                return await _reply(send, 415, "send the request as application/json")
            declared = headers.get(b"content-length")
            if declared is not None:
                if not declared.isdigit() or int(declared) > self.max_body:
                    return await _reply(send, 413, f"body over {self.max_body} bytes")
                if (
                    self.fast is not None
                    and path == "/predict"
                    and scope.get("method") == "POST"
                    and headers.get(b"content-type", b"").lower().startswith(b"application/json")
                ):
                    return await self._fast_path(scope, receive, send)
                return await self._recording(scope, receive, send)
            return await self._counting(scope, receive, send)  # chunked: count as it arrives
        return await self._other(path, scope, receive, send)

    async def _recording(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """BentoML's handler answers, and `received_body` gives the body it read."""
        chunks: list[bytes] = []

        async def recorded_receive() -> dict[str, Any]:
            message = dict(await receive())
            chunks.append(message.get("body", b""))
            return message

        await _passing_on(chunks, self.app(scope, recorded_receive, send))

    async def _fast_path(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            answer = self.fast(body) if self.fast is not None else None
        except Exception:  # scoring failed: BentoML's handler runs it again and reports it
            answer = None
        if answer is not None:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        replayed = False

        async def replay() -> dict[str, Any]:  # the body once more, then the real channel
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await _passing_on([body], self.app(scope, replay, send))

    async def _counting(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen = 0
        refused = False
        chunks: list[bytes] = []

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body and not refused:
                refused = True
                chunks.clear()
                await _reply(send, 413, f"body over {self.max_body} bytes")
                return {"type": "http.disconnect"}
            chunks.append(message.get("body", b""))
            return dict(message)

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:  # after our 413, whatever the app answers is dropped
                await send(message)

        try:
            await _passing_on(chunks, self.app(scope, counted_receive, guarded_send))
        except Exception:
            if not refused:
                raise

    async def _other(self, path: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if path == "/docs.json" and scope.get("method") == "GET":
            prefix = dict(scope["headers"]).get(b"x-forwarded-prefix", b"").decode("latin-1")
            prefix = prefix if re.fullmatch(PREFIX, prefix) else ""
            return await self.app(scope, receive, _patching_openapi(send, prefix))
        return await self.app(scope, receive, send)


async def _passing_on(chunks: list[bytes], app_call: Awaitable[None]) -> None:
    """Run BentoML's handler with `chunks` (filled as it reads the body) as `received_body`."""
    token = _RECEIVED.set(chunks)
    try:
        await app_call
    finally:
        _RECEIVED.reset(token)


async def _reply(
    send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _patching_openapi(send: Any, prefix: str = "") -> Any:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def capture(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = patch_openapi(body, prefix)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return capture


ERROR_DETAIL = {
    "title": "Error Detail",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
}


def patch_openapi(body: bytes, prefix: str = "") -> bytes:
    spec = json.loads(body)
    spec["openapi"] = "3.1.0"
    if prefix:  # behind the gateway: the paths are relative to the model's prefix
        spec["servers"] = [{"url": prefix, "description": "the maas gateway's path to this model"}]
    for item in spec.get("paths", {}).values():  # a body with required fields is required
        request = item.get("post", {}).get("requestBody", {})
        schema = request.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("required"):
            request["required"] = True
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in {"InvalidArgument", "NotFound", "InternalServerError"}:
            schema.get("properties", {})["detail"] = ERROR_DETAIL
    return json.dumps(spec).encode()
