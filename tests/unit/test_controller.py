"""Controller decisions, the audit trail, the stable-address forwarder and k8s manifests."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import yaml

from maas.config import load_params
from maas.controller import (
    OVERRIDE_TAG,
    audit,
    controller_lock,
    policy_problem,
    previous_deployed_version,
    read_audit,
)
from maas.deploy import render_kubernetes
from maas.packaging import free_port
from maas.proxy import Backend, serve
from tests.conftest import ROOT

PASSED = {"validation_status": "passed", "gate_passed": "true", "infra_validation": "passed"}


def test_policy_accepts_a_clean_version_and_names_every_problem() -> None:
    assert policy_problem(PASSED) is None
    failed_gate = {**PASSED, "gate_passed": "false", "gate_reasons": '["ROC AUC 0.61 < 0.65"]'}
    assert "did not pass the gate (ROC AUC 0.61 < 0.65)" in str(policy_problem(failed_gate))
    bad = {"validation_status": "failed", "infra_validation": "failed: /readyz not ready"}
    problem = str(policy_problem(bad))
    assert "data validation failed" in problem and "no gate result" in problem
    assert "infra-validation" in problem
    assert policy_problem({**failed_gate, OVERRIDE_TAG: "hotfix approved by J. Doe"}) is None


def test_audit_trail_appends_and_finds_the_previous_deployment(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml", [f"deploy.audit_log={tmp_path / 'a.jsonl'}"])
    assert read_audit(params) == [] and previous_deployed_version(params, None) is None
    for version in ("1", "2"):
        audit(params, "deployed", version, image=f"img:v{version}")
    audit(params, "refused", "3", reason="gate")
    events = read_audit(params)
    assert [(e["event"], e["version"]) for e in events] == [
        ("deployed", "1"), ("deployed", "2"), ("refused", "3")
    ]  # fmt: skip
    assert events[0]["actor"] == "controller" and events[0]["ts"].endswith("Z")
    assert previous_deployed_version(params, "2") == "1"
    assert previous_deployed_version(params, "1") == "2"


def test_controller_lock_serializes_passes(tmp_path: Path) -> None:
    order: list[str] = []

    def second() -> None:
        with controller_lock(tmp_path):
            order.append("second")

    with controller_lock(tmp_path):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.3)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]


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


def test_forwarder_switches_new_connections_and_says_503_without_backend(tmp_path) -> None:
    async def scenario() -> list[bytes]:
        async def answer(text: bytes):
            async def handle(reader, writer):
                await reader.read(100)
                writer.write(text)
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            return server, server.sockets[0].getsockname()[1]

        one, port_one = await answer(b"one")
        two, port_two = await answer(b"two")
        state = tmp_path / "local.json"
        listen = free_port()
        proxy = asyncio.create_task(serve("127.0.0.1", listen, Backend(state)))
        await asyncio.sleep(0.2)

        async def ask() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            await writer.drain()
            data = await reader.read(1000)
            writer.close()
            return data

        answers = [await ask()]
        state.write_text(json.dumps({"port": port_one}))
        answers.append(await ask())
        state.write_text(json.dumps({"port": port_two, "version": "2"}))
        answers.append(await ask())
        proxy.cancel()
        one.close()
        two.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers[0].startswith(b"HTTP/1.1 503") and b"no model is deployed" in answers[0]
    assert answers[1:] == [b"one", b"two"]


def test_kubernetes_manifests_probe_readyz(tmp_path: Path) -> None:
    path = render_kubernetes("flight-delay", "7", "maas-flight-delay:v7", tmp_path)
    deployment, service = yaml.safe_load_all(path.read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "maas-flight-delay:v7"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["template"]["metadata"]["labels"]["maas/version"] == "7"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert service["spec"]["selector"] == {"app": "maas-flight-delay"}


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:port"])
def test_deploy_address_must_have_a_port(address: str, tmp_path: Path) -> None:
    from maas.config import ConfigError

    with pytest.raises(ConfigError, match=r"deploy\.address"):
        load_params(ROOT / "params.yaml", [f"deploy.address={address}"])
