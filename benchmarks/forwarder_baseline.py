"""The baseline benchmarks/gateway.py measures the HAProxy gateway against: the hand-written
HTTP/1.1 forwarder that was maas's stable address until the gateway replaced it (issue 13),
kept here unchanged apart from this paragraph.

The local deploy target's stable address: an HTTP/1.1 forwarder to whichever version serves.

Routing is per request, not per connection: the forwarder owns the clients' keep-alive
connections and sends each request to the backend named in the target's state file at that
moment (re-read when the file changes). A switch is one atomic file replace; a request already
on the old container finishes there, the next one goes to the new container, and no client
connection is ever closed by the switch. A request whose upstream connection breaks before
any response byte (an idle keep-alive closed by the server) is retried once on a fresh
connection: predictions are pure functions of the request. It runs as its own process, apart
from the controller: a controller restart never interrupts serving.

    python benchmarks/forwarder_baseline.py --listen 127.0.0.1:3000 --state local.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import h11

from maas.net import parse_address

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024  # bytes of one request body
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"proxy-connection",
    b"content-length",
}


class Backend:
    """The backend port from the state file, cached by the file's mtime and size."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self._stamp: tuple[int, int] | None = None
        self._port: int | None = None

    def port(self) -> int | None:
        try:
            info = os.stat(self.state)
        except FileNotFoundError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            try:
                models = json.loads(self.state.read_text())["models"]
                self._port = int(next(iter(models.values()))["port"])  # the one model
            except (OSError, ValueError, KeyError, TypeError):
                return self._port  # a torn read: keep the last good backend
            self._stamp = stamp
        return self._port


class Upstream:
    """One keep-alive HTTP connection to a backend port."""

    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.port, self.reader, self.writer = port, reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self.reusable = True

    @classmethod
    async def open(cls, port: int) -> Upstream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(port, reader, writer)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(65536)
            self.conn.receive_data(data)  # b"" tells h11 the peer closed

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[h11.Response, bytes]:
        """Send one request, read the whole response (responses here are small JSON)."""
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        headers.append((b"content-length", str(len(body)).encode()))
        self.writer.write(
            self.conn.send(
                h11.Request(method=request.method, target=request.target, headers=headers)
            )
        )
        self.writer.write(self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage()))
        await self.writer.drain()
        response = await self.next_event()
        if not isinstance(response, h11.Response):
            raise ConnectionError(f"backend answered {type(response).__name__}")
        chunks = []
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise ConnectionError("backend closed mid-response")
        self.reusable = self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE
        if self.reusable:
            self.conn.start_next_cycle()
        return response, b"".join(chunks)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    """(request, body), or None when the client closed; raises ValueError on a huge body."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            request, body = event, bytearray()
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_BODY:
                        raise ValueError("request body too large")
                elif isinstance(part, h11.EndOfMessage):
                    return request, bytes(body)
                elif isinstance(part, h11.ConnectionClosed):
                    return None
        return None


def _plain(status: int, text: str) -> tuple[h11.Response, bytes]:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    return h11.Response(status_code=status, headers=headers), body


async def forward(
    upstream: Upstream | None, target: int, request: h11.Request, body: bytes
) -> tuple[Upstream | None, h11.Response, bytes]:
    """Send to `target`, reusing `upstream` when it points there; one retry on a broken
    connection (nothing was answered, and a prediction is a pure function of the request)."""
    if upstream is not None and upstream.port != target:
        upstream.close()  # switched: this request goes to the new version
        upstream = None
    for attempt in range(2):
        try:
            if upstream is None:
                upstream = await Upstream.open(target)
            response, payload = await upstream.exchange(request, body)
            if not upstream.reusable:
                upstream.close()
                upstream = None
            return upstream, response, payload
        except (OSError, ConnectionError, h11.ProtocolError) as error:
            if upstream is not None:
                upstream.close()
            upstream = None
            if attempt == 1:
                return None, *_plain(502, f"backend unavailable: {error}")
    raise AssertionError("unreachable")


async def serve(host: str, port: int, backend: Backend) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        upstream: Upstream | None = None
        try:
            while True:
                try:
                    received = await _read_request(conn, reader)
                except (ValueError, h11.RemoteProtocolError) as error:
                    status = 413 if isinstance(error, ValueError) else 400
                    text = f"{error}\n".encode()
                    writer.write(
                        f"HTTP/1.1 {status} Bad Request\r\ncontent-length: {len(text)}"
                        "\r\nconnection: close\r\n\r\n".encode()
                        + text
                    )
                    await writer.drain()
                    return
                if received is None:
                    return
                request, body = received
                target = backend.port()
                if target is None:
                    response, payload = _plain(503, "no model is deployed here yet")
                else:
                    upstream, response, payload = await forward(upstream, target, request, body)
                headers = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
                headers.append((b"content-length", str(len(payload)).encode()))
                head = h11.Response(
                    status_code=response.status_code, headers=headers, reason=response.reason
                )
                writer.write(conn.send(head))
                writer.write(conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            if upstream is not None:
                upstream.close()
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(handle, host, port, reuse_address=True, backlog=1024)
    log.info("proxy on %s:%s -> backend from %s", host, port, backend.state)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="maas local deploy target: stable address")
    parser.add_argument("--listen", default="127.0.0.1:3000")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    host, port = parse_address(args.listen)
    asyncio.run(serve(host, port, Backend(args.state)))


if __name__ == "__main__":
    main()
