"""A canary at the gateway: the real HAProxy splitting a model's requests by weight between
two small HTTP servers, the weights moved over the Runtime API (no reload)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from maas.errors import DeployError
from maas.net import free_port, wait_until
from maas.operate.gateway import Gateway
from maas.operate.gateway_canary import canary_counts, end_canary, set_weight, start_canary
from tests.unit.operate.gateway_backends import backend, needs_haproxy
from tests.unit.operate.test_gateway import hammer


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    needs_haproxy()


@pytest.fixture
def gateway(tmp_path: Path):
    gateway = Gateway(tmp_path, "127.0.0.1", free_port(), default="m")
    yield gateway
    gateway.stop()


def shares(url: str, requests: int, headers: dict[str, str] | None = None) -> Counter[str]:
    with httpx.Client(timeout=5) as http:
        return Counter(http.post(url, json={}, headers=headers).text for _ in range(requests))


def test_weights_split_the_traffic_and_move_without_a_reload(gateway) -> None:
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    base = f"http://127.0.0.1:{gateway.port}"
    url = f"{base}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [port_a], "1")
        worker = gateway._worker()
        start_canary(gateway, "m", [port_b], "2", weight=25, sticky=None)
        seen = shares(url, 400)
        assert 70 <= seen["b"] <= 130 and seen["a"] + seen["b"] == 400, seen  # 25% of 400
        assert httpx.post(f"{base}/predict", json={}).text in {"a", "b"}  # the default path
        # each version alone by its number, whatever the weights
        assert httpx.post(f"{base}/models/m/versions/2/predict", json={}).text == "b"
        assert httpx.post(f"{base}/models/m/versions/1/predict", json={}).text == "a"
        counts = canary_counts(gateway, "m")
        assert counts["candidate"].requests >= seen["b"] and counts["candidate"].errors == 0

        set_weight(gateway, "m", 50)
        seen = shares(url, 400)
        assert 160 <= seen["b"] <= 240, seen
        assert gateway._worker() == worker  # no reload: the same worker serves
        assert gateway.table().routes["m"].canary.weight == 50  # recorded

        # a killed gateway comes back from its table with the same split
        os.kill(int(gateway.pid_file.read_text()), signal.SIGKILL)
        assert wait_until(lambda: not gateway.running(), 5, 0.05)
        gateway.ensure()
        seen = shares(url, 400)
        assert 160 <= seen["b"] <= 240, seen
        assert gateway.live().routes["m"].canary.weight == 50  # read back from HAProxy

        set_weight(gateway, "m", 100)
        assert shares(url, 50) == Counter({"b": 50})
        end_canary(gateway, "m", promote=True)
        assert shares(url, 50) == Counter({"b": 50})
        route = gateway.table().routes["m"]
        assert (route.version, route.ports, route.canary) == ("2", [port_b], None)
        gone = httpx.post(f"{base}/models/m/versions/1/predict", json={})
        assert gone.status_code == 404
        with pytest.raises(DeployError, match="no candidate"):
            set_weight(gateway, "m", 10)
    finally:
        a.shutdown()
        b.shutdown()


def test_an_aborted_canary_leaves_the_live_version_alone_under_load(gateway) -> None:
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    url = f"http://127.0.0.1:{gateway.port}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [port_a], "1")
        seen: Counter[str] = Counter()
        stop = threading.Event()
        threads = hammer(url, seen, stop)
        for weight in (5, 25, 50):
            start_canary(gateway, "m", [port_b], "2", weight=weight, sticky=None)
            stop.wait(0.2)
            end_canary(gateway, "m", promote=False)
            stop.wait(0.1)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(seen) == {"a", "b"}, seen  # both answered, no request failed
        assert shares(url, 50) == Counter({"a": 50})
        assert gateway.table().routes["m"].canary is None
        gone = httpx.post(f"http://127.0.0.1:{gateway.port}/models/m/versions/2/predict", json={})
        assert gone.status_code == 404
    finally:
        a.shutdown()
        b.shutdown()


def test_a_sticky_header_pins_a_client_to_one_version(gateway) -> None:
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    url = f"http://127.0.0.1:{gateway.port}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [port_a], "1")
        start_canary(gateway, "m", [port_b], "2", weight=50, sticky="X-Entity")
        answers = {
            key: shares(url, 10, {"X-Entity": key}) for key in (f"user-{n}" for n in range(40))
        }
        assert all(len(seen) == 1 for seen in answers.values()), answers  # one version each
        versions = Counter(next(iter(seen)) for seen in answers.values())
        assert set(versions) == {"a", "b"}, versions  # and the clients spread over both
        set_weight(gateway, "m", 100)
        assert shares(url, 20, {"X-Entity": "user-1"}) == Counter({"b": 20})
    finally:
        a.shutdown()
        b.shutdown()


def test_a_canary_needs_a_serving_version_and_a_percent(gateway) -> None:
    _, port = backend("b")
    gateway.ensure()
    with pytest.raises(DeployError, match="nothing serves it"):
        start_canary(gateway, "m", [port], "2", weight=5, sticky=None)
    gateway.switch("m", [port], "1")
    with pytest.raises(DeployError, match="a percent"):
        start_canary(gateway, "m", [port], "2", weight=101, sticky=None)
    assert gateway.table().routes["m"].canary is None
