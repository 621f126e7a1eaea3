"""Addresses and waiting: `host:port` parsing, free ports, and polling until something answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


class ProcessExited(RuntimeError):
    """What was being waited for died first (a server process or a container exited)."""


def parse_address(address: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`host:port` (or `:port`) -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host or default_host, int(port)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll `predicate` until it is true (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def http_ok(url: str, timeout_s: float = 2) -> bool:
    """True when GET `url` answers 200."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_http(
    url: str,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
    interval_s: float = 0.25,
) -> bool:
    """Poll GET `url` until it answers 200 (True) or `timeout_s` passes (False).

    Raises ProcessExited as soon as `alive()` turns false: no point waiting for the dead."""

    def ready() -> bool:
        if alive is not None and not alive():
            raise ProcessExited(f"exited before {url} answered")
        return http_ok(url)

    return wait_until(ready, timeout_s, interval_s)
