"""The local deploy target's stable address: a TCP forwarder to whichever container serves.

Each new connection goes to the backend named in the target's state file (re-read when the
file changes), so a switch is one atomic file replace: connections opened after it reach the
new container, open ones finish on the old. It runs as its own process, apart from the
controller: a controller restart never interrupts serving.

    python -m maas.proxy --listen 127.0.0.1:3000 --state .maas/deploy/local.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


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
                self._port = int(json.loads(self.state.read_text())["port"])
            except (OSError, ValueError, KeyError, TypeError):
                return self._port  # a torn read: keep the last good backend
            self._stamp = stamp
        return self._port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(host: str, port: int, backend: Backend) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter):
        target = backend.port()
        try:
            if target is None:
                raise ConnectionError("no deployment yet")
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except (OSError, ConnectionError) as error:
            body = f"no model is deployed here yet or it is starting ({error})\n".encode()
            client_writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            with contextlib.suppress(Exception):
                await client_writer.drain()
                client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

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
    host, _, port = args.listen.rpartition(":")
    asyncio.run(serve(host or "127.0.0.1", int(port), Backend(args.state)))


if __name__ == "__main__":
    main()
