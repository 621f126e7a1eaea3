"""The stable address's gateway: the real HAProxy, in front of two small HTTP servers."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from maas.net import free_port, wait_until
from maas.operate.deployment import DeployError
from maas.operate.gateway import Gateway


@pytest.fixture(autouse=True)
def needs_haproxy():
    if shutil.which("haproxy") is None:
        if os.environ.get("MAAS_REQUIRE_CONTAINERS") == "1":
            pytest.fail("haproxy is not installed, but MAAS_REQUIRE_CONTAINERS=1 (make system)")
        pytest.skip("haproxy is not installed (make system)")


def backend(name: str) -> tuple[ThreadingHTTPServer, int]:
    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the BentoML service

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = name.encode() if self.path == "/predict" else f"{name}:{self.path}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def gateway(tmp_path: Path):
    gateway = Gateway(tmp_path, "127.0.0.1", free_port())
    yield gateway
    gateway.stop()


def test_switching_under_load_fails_no_request_and_a_killed_gateway_comes_back(gateway) -> None:
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    url = f"http://127.0.0.1:{gateway.port}/predict"
    try:
        gateway.ensure(None)
        assert httpx.post(url, json={}).status_code == 503  # no version yet
        gateway.switch(port_a)
        assert httpx.post(url, json={}).text == "a"

        seen: Counter[str] = Counter()
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=5) as http:  # keep-alive across every switch
                while not stop.is_set():
                    try:
                        response = http.post(url, json={"x": 1})
                        seen[response.text if response.status_code == 200 else "fail"] += 1
                    except httpx.HTTPError as error:
                        seen[type(error).__name__] += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for index in range(20):
            gateway.switch(port_b if index % 2 == 0 else port_a)
            stop.wait(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(seen) == {"a", "b"}, seen  # both served, nothing failed
        with httpx.Client() as http:  # the switch holds for a kept-alive connection too
            gateway.switch(port_b)
            assert {http.post(url, json={}).text for _ in range(20)} == {"b"}
            gateway.switch(port_a)
            assert {http.post(url, json={}).text for _ in range(20)} == {"a"}

        pid = int(gateway.pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not gateway.running(), 5, 0.05)
        gateway.ensure(port_a)  # what the controller does when a pass finds it gone
        assert gateway.running() and int(gateway.pid_file.read_text()) != pid
        assert httpx.post(url, json={}).text == "a"
    finally:
        a.shutdown()
        b.shutdown()


def test_a_configuration_haproxy_refuses_is_never_put_in_place(gateway) -> None:
    _, port = backend("a")
    gateway.ensure(port)
    live = gateway.config_file.read_text()
    gateway.host = "256.0.0.1"  # not an address: `haproxy -c` refuses the rendered file
    with pytest.raises(DeployError, match="haproxy -c refused"):
        gateway.checked_config(port)
    assert gateway.config_file.read_text() == live
    assert not gateway.config_file.with_suffix(".cfg.new").exists()


def test_models_path_reaches_the_model_and_another_name_gets_404(gateway) -> None:
    server, port = backend("a")
    gateway.model = "flight-delay"
    gateway.ensure(port)
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        assert httpx.post(f"{base}/predict", json={}).text == "a"  # the default task's path
        assert httpx.post(f"{base}/models/flight-delay/predict", json={}).text == "a"
        assert httpx.post(f"{base}/models/flight-delay/metadata", json={}).text == "a:/metadata"
        unknown = httpx.post(f"{base}/models/hotel-rates/predict", json={})
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "no such model here", "models": ["flight-delay"]}
    finally:
        server.shutdown()


def test_an_address_held_by_another_process_is_refused(tmp_path: Path) -> None:
    """Anything listening on deploy.address (a `maas serve`, another project) used to count as
    our gateway, and the controller recorded a deploy while something else answered."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        gateway = Gateway(tmp_path, "127.0.0.1", holder.getsockname()[1])
        with pytest.raises(DeployError, match="held by another process"):
            gateway.ensure(None)
        assert not gateway.running()
