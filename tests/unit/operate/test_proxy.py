"""The stable address's forwarder: routing per request by the state file, in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from maas.net import free_port
from maas.operate.proxy import Backend, serve


def test_backend_follows_the_state_file_and_survives_torn_writes(tmp_path: Path) -> None:
    state = tmp_path / "local.json"
    backend = Backend(state)
    assert backend.port() is None
    state.write_text(json.dumps({"port": 4001}))
    assert backend.port() == 4001
    state.write_text('{"port": ')  # half-written: keep serving the last good backend
    assert backend.port() == 4001
    state.write_text(json.dumps({"port": 4002, "version": "2"}))
    assert backend.port() == 4002


def test_forwarder_routes_each_request_and_says_503_without_backend(tmp_path) -> None:
    """One keep-alive client connection across a switch: each request reaches the backend
    named at that moment; nothing fails."""

    async def scenario() -> list[tuple[int, bytes]]:
        async def backend(text: bytes):
            async def handle(reader, writer):
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(text)
                                 + text)  # fmt: skip
                    await writer.drain()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            return server, server.sockets[0].getsockname()[1]

        (one, port_one), (two, port_two) = await backend(b"one"), await backend(b"two")
        state = tmp_path / "local.json"
        listen = free_port()
        proxy = asyncio.create_task(serve("127.0.0.1", listen, Backend(state)))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)

        async def ask() -> tuple[int, bytes]:
            writer.write(b"GET /x HTTP/1.1\r\nHost: maas\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            return int(head.split()[1]), await reader.readexactly(length)

        answers = [await ask()]
        state.write_text(json.dumps({"port": port_one}))
        answers.append(await ask())
        answers.append(await ask())
        state.write_text(json.dumps({"port": port_two, "version": "2"}))
        answers.append(await ask())
        writer.close()
        proxy.cancel()
        one.close()
        two.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers[0][0] == 503 and b"no model is deployed" in answers[0][1]
    assert answers[1:] == [(200, b"one"), (200, b"one"), (200, b"two")]
