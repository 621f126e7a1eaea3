"""The gateway's metrics frontend (deploy.gateway.metrics_listen) on the real HAProxy, and the
files Prometheus reads beside the gateway's (maas.operate.gateway_metrics)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from maas.config.sections import GatewayParams
from maas.errors import DeployError
from maas.net import free_port
from maas.operate.gateway import Gateway
from maas.operate.gateway_metrics import backends_text, serving_targets
from maas.operate.gateway_routes import Canary, Route, RouteTable
from tests.unit.operate.gateway_backends import backend, needs_haproxy


def test_backends_and_targets_follow_the_routing_table() -> None:
    table = RouteTable(
        routes={
            "a": Route("b1", [4001, 4002], "3", "green", Canary([4003], "4", 10)),
            "b": Route("b0", [5001], "7"),
            "gone": Route("b2"),  # holds a backend, serves nothing
        }
    )
    info = backends_text(table)
    assert 'maas_gateway_backend_info{proxy="b1-green",model="a"} 1' in info
    assert 'maas_gateway_backend_info{proxy="b1-canary",model="a"} 1' in info
    assert 'maas_gateway_backend_info{proxy="b0-blue",model="b"} 1' in info
    assert serving_targets(table) == [
        {
            "targets": ["127.0.0.1:4001", "127.0.0.1:4002"],
            "labels": {"model": "a", "version": "3", "role": "live"},
        },
        {
            "targets": ["127.0.0.1:4003"],
            "labels": {"model": "a", "version": "4", "role": "candidate"},
        },
        {"targets": ["127.0.0.1:5001"], "labels": {"model": "b", "version": "7", "role": "live"}},
    ]


def test_the_metrics_frontend_follows_the_setting_and_names_a_taken_address(
    tmp_path: Path,
) -> None:
    needs_haproxy()
    metrics = f"127.0.0.1:{free_port()}"
    off = Gateway(tmp_path, "127.0.0.1", free_port(), default="m")
    on = Gateway(
        tmp_path,
        "127.0.0.1",
        off.port,
        limits=GatewayParams.model_validate({"metrics_listen": metrics}),
    )
    server, port = backend("a")
    try:
        off.ensure()
        off.switch("m", [port], "1")
        assert "frontend metrics" not in off.config_file.read_text()
        assert json.loads((tmp_path / "prometheus" / "serving.json").read_text())[0]["targets"] == [
            f"127.0.0.1:{port}"
        ]
        on.switch("m", [port], "2")  # the setting turned on: the running gateway reloads
        assert "frontend metrics" in on.config_file.read_text()
        assert httpx.post(f"http://127.0.0.1:{on.port}/predict", json={}).text == "a"
        exported = httpx.get(f"http://{metrics}/metrics").text
        assert 'haproxy_backend_http_responses_total{proxy="b0-' in exported
        assert '{proxy="b0-blue",model="m"}' in httpx.get(f"http://{metrics}/metrics/backends").text
        assert httpx.get(f"http://{metrics}/anything").status_code == 404
        model_address = httpx.get(f"http://127.0.0.1:{on.port}/metrics/backends")
        assert "maas_gateway_backend_info" not in model_address.text  # never on the model's
        off.switch("m", [port], "3")  # and off again
        assert "frontend metrics" not in off.config_file.read_text()
    finally:
        off.stop()
        server.shutdown()
    with socket.socket() as held:  # another process on the metrics address: named
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = f"127.0.0.1:{held.getsockname()[1]}"
        blocked = Gateway(
            tmp_path / "b",
            "127.0.0.1",
            free_port(),
            limits=GatewayParams.model_validate({"metrics_listen": taken}),
        )
        with pytest.raises(DeployError, match=f"metrics_listen {taken} is held"):
            blocked.ensure()
        assert not blocked.running()
