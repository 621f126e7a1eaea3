"""The gateway when a step fails, on the real HAProxy: a reload that does not happen (issue 29
item 3) and each failure point of a switch (item 14) leave the old version serving and the
recorded table agreeing with HAProxy."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from maas.errors import DeployError
from maas.net import free_port, wait_until
from maas.operate.gateway import Gateway
from maas.operate.gateway_routes import RouteTable
from tests.unit.operate.gateway_backends import backend, needs_haproxy


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    needs_haproxy()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path, "127.0.0.1", free_port(), default="m")
    yield gateway
    if gateway.running():
        os.kill(int(gateway.pid_file.read_text()), signal.SIGCONT)  # a test stopped it
    gateway.stop()


def answers(gateway: Gateway, path: str, times: int = 10) -> set[str]:
    url = f"http://127.0.0.1:{gateway.port}{path}"
    with httpx.Client() as http:
        return {
            (r.text if r.status_code == 200 else str(r.status_code))
            for r in (http.post(url, json={}) for _ in range(times))
        }


def agrees(gateway: Gateway) -> bool:
    """The recorded table is what HAProxy serves."""
    recorded, live = gateway.table(), gateway.live()
    return (recorded.routes, recorded.replicas, recorded.pool) == (
        live.routes,
        live.replicas,
        live.pool,
    )


def test_a_reload_that_did_not_happen_leaves_the_table_as_haproxy_serves(gateway) -> None:
    """The master does not reload (stopped: SIGSTOP) when a model needs more replicas. The
    table used to say the reload's (every model on blue, two servers per slot): the next
    switch of another model sent `m` to a slot in maintenance (503) and named servers HAProxy
    did not have ("No such server"). When the master reloads late, the next switch finds
    another worker than the one that confirmed the table and converges from HAProxy."""
    (a, port_a), (b, port_b), (c, port_c) = backend("a"), backend("b"), backend("c")
    try:
        gateway.ensure()
        gateway.switch("m", [port_a], "1")
        gateway.switch("m", [port_b], "2")  # m on green
        gateway.reload_timeout_s = 1
        master = int(gateway.pid_file.read_text())
        os.kill(master, signal.SIGSTOP)
        with pytest.raises(DeployError, match="did not reload"):
            gateway.switch("n", [port_a, port_c], "1")  # 2 replicas: a reload
        assert gateway.table().replicas == 1 and gateway.table().routes["m"].live == "green"
        assert agrees(gateway)
        gateway.switch("n", [port_c], "1")  # one replica: no reload needed
        assert answers(gateway, "/models/m/predict") == {"b"}
        assert answers(gateway, "/models/n/predict") == {"c"}
        assert agrees(gateway)

        worker = gateway._worker()
        os.kill(master, signal.SIGCONT)  # the reload happens now, after we gave up on it
        assert wait_until(lambda: gateway._worker() not in (None, worker), 10, 0.1)
        gateway.switch("n", [port_a, port_c], "2")
        assert answers(gateway, "/models/n/predict", 20) == {"a", "c"}
        assert answers(gateway, "/models/m/predict") == {"b"}
        gateway.switch("m", [port_a], "3")
        assert answers(gateway, "/models/m/versions/3/predict") == {"a"}
        assert agrees(gateway)
    finally:
        for server in (a, b, c):
            server.shutdown()


FAILURES = {  # a step of a switch from v1 to v2 -> the Runtime API line that fails there
    "spare address": ("addr 127.0.0.1",),
    "spare ready": ("state ready",),
    "routes map prepared": ("prepare map routes.map",),
    "versions map entry": ("add map @", "versions.map"),  # the routes map is committed
    "versions map commit": ("commit map @", "versions.map"),
}


@pytest.mark.parametrize("step", [*FAILURES, "record (disk full)", "record and undo fail"])
def test_every_failure_point_of_a_switch_leaves_the_old_version_serving(
    gateway, monkeypatch, step: str
) -> None:
    (old, old_port), (new, new_port) = backend("old"), backend("new")
    try:
        gateway.ensure()
        gateway.switch("m", [old_port], "1")
        command, write = gateway.command, RouteTable.write
        calls: list[str] = []

        def failing(line: str) -> str:
            calls.append(line)
            fails = FAILURES.get(step, ("never",))
            first = [c for c in calls if all(part in c for part in fails)] == [line]
            if first and all(part in line for part in fails):
                raise DeployError(f"injected at {step}")
            if step == "record and undo fail" and line.endswith("state maint"):
                raise DeployError("injected: the undo's maintenance refused")
            return command(line)

        def disk_full(table: RouteTable, path: Path) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(gateway, "command", failing)
        if step.startswith("record"):
            monkeypatch.setattr(RouteTable, "write", disk_full)
        with pytest.raises(DeployError):
            gateway.switch("m", [new_port], "2")
        monkeypatch.setattr(RouteTable, "write", write)
        monkeypatch.setattr(gateway, "command", command)

        assert answers(gateway, "/models/m/predict", 20) == {"old"}
        assert answers(gateway, "/models/m/versions/1/predict") == {"old"}
        assert answers(gateway, "/models/m/versions/2/predict") == {"404"}
        assert gateway.table().routes["m"].version == "1" and agrees(gateway)
        gateway.switch("m", [new_port], "3")  # and the next switch works
        assert answers(gateway, "/models/m/predict") == {"new"} and agrees(gateway)
    finally:
        old.shutdown()
        new.shutdown()


def test_a_switch_back_stands_on_a_full_disk(gateway, monkeypatch) -> None:
    """A deploy whose state cannot be written switches back to the old version (targets.py);
    on a full disk that switch cannot record the table either. It used to undo itself (back
    to the new version, whose containers were then removed: 503); now it stands, and the next
    switch finds the table in doubt and records what HAProxy serves."""
    (old, old_port), (new, new_port) = backend("old"), backend("new")
    try:
        gateway.ensure()
        gateway.switch("m", [old_port], "1")
        gateway.switch("m", [new_port], "2")

        def disk_full(table: RouteTable, path: Path) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(RouteTable, "write", disk_full)
            gateway.switch("m", [old_port], "1", restoring=True)
        new.shutdown()  # the new version's containers are removed
        assert answers(gateway, "/models/m/predict", 20) == {"old"}
        assert gateway.table().routes["m"].version == "2"  # unrecorded: in doubt
        assert not agrees(gateway)
        gateway.switch("other", [old_port], "5")  # converges first, then switches
        assert agrees(gateway) and gateway.table().routes["m"].version == "1"
        assert answers(gateway, "/models/m/predict") == {"old"}
    finally:
        old.shutdown()
        new.shutdown()


def test_a_deploy_whose_state_cannot_be_written_ends_on_the_old_version(
    tmp_path: Path, monkeypatch
) -> None:
    """LocalTarget.deploy on a disk that fills up right after the switch: its state is not
    written, so it switches back, and that switch cannot record the table either. It used to
    undo itself, and the new containers were then removed: 503. The containers are small HTTP
    servers here (a serving image is the e2e tests' part): what is under test is the order of
    the gateway's steps and the removal."""
    from maas.operate.targets import LocalTarget

    target = LocalTarget(tmp_path, f"127.0.0.1:{free_port()}", "podman", drain_s=0)
    running: dict[str, ThreadingHTTPServer] = {}

    def start(model: str, version: str, image: str, image_id: str) -> tuple[str, int]:
        server, port = backend(f"v{version}")
        running[f"{model}-v{version}"] = server
        return f"{model}-v{version}", port

    def remove(names: list[str]) -> None:
        for name in names:
            server = running.pop(name)
            server.shutdown()
            server.server_close()

    def disk_full(table: RouteTable, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def state_on_a_full_disk(deployment: object) -> None:
        monkeypatch.setattr(RouteTable, "write", disk_full)  # from now on
        raise DeployError("cannot write the deploy state: No space left on device")

    monkeypatch.setattr(target, "_start", start)
    monkeypatch.setattr(target, "_remove", remove)
    try:
        target.deploy("m", "1", "image", "id1")
        monkeypatch.setattr(target, "_write_state", state_on_a_full_disk)
        with pytest.raises(DeployError, match="deploy state"):
            target.deploy("m", "2", "image", "id2")
        assert list(running) == ["m-v1"]  # the new container was removed
        assert answers(target.gateway, "/models/m/predict", 20) == {"v1"}
    finally:
        target.gateway.stop()
        for server in running.values():
            server.shutdown()
