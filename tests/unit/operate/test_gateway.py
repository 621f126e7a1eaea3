"""The stable address's gateway: the real HAProxy, in front of two small HTTP servers."""

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
from maas.operate.gateway_routes import FORMAT, POOL
from tests.unit.operate.gateway_backends import backend, needs_haproxy


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    needs_haproxy()


@pytest.fixture
def gateway(tmp_path: Path):
    gateway = Gateway(tmp_path, "127.0.0.1", free_port(), default="m")
    yield gateway
    gateway.stop()


def hammer(url: str, seen: Counter[str], stop: threading.Event) -> list[threading.Thread]:
    """Four keep-alive clients posting to `url` until `stop`: answers (or failures) counted."""

    def client() -> None:
        with httpx.Client(timeout=5) as http:  # keep-alive across every change
            while not stop.is_set():
                try:
                    response = http.post(url, json={"x": 1})
                    seen[response.text if response.status_code == 200 else "fail"] += 1
                except httpx.HTTPError as error:
                    seen[type(error).__name__] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    return threads


def test_switching_under_load_fails_no_request_and_a_killed_gateway_comes_back(gateway) -> None:
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    url = f"http://127.0.0.1:{gateway.port}/predict"
    try:
        gateway.ensure()
        nothing = httpx.post(url, json={})
        assert nothing.status_code == 404 and "no default model" in nothing.json()["error"]
        gateway.switch("m", [port_a], "1")
        assert httpx.post(url, json={}).text == "a"

        seen: Counter[str] = Counter()
        stop = threading.Event()
        threads = hammer(url, seen, stop)
        for index in range(20):
            gateway.switch("m", [port_b if index % 2 == 0 else port_a], str(index + 2))
            stop.wait(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(seen) == {"a", "b"}, seen  # both served, nothing failed
        with httpx.Client() as http:  # the switch holds for a kept-alive connection too
            gateway.switch("m", [port_b], "30")
            assert {http.post(url, json={}).text for _ in range(20)} == {"b"}
            gateway.switch("m", [port_a], "31")
            assert {http.post(url, json={}).text for _ in range(20)} == {"a"}

        pid = int(gateway.pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not gateway.running(), 5, 0.05)
        gateway.ensure()  # what the controller does when a pass finds it gone
        assert gateway.running() and int(gateway.pid_file.read_text()) != pid
        assert httpx.post(url, json={}).text == "a"  # from its table: the same routes
        assert (
            httpx.post(
                f"http://127.0.0.1:{gateway.port}/models/m/versions/31/predict", json={}
            ).text
            == "a"
        )
    finally:
        a.shutdown()
        b.shutdown()


def test_a_configuration_haproxy_refuses_is_never_put_in_place(gateway) -> None:
    _, port = backend("a")
    gateway.ensure()
    gateway.switch("m", [port], "1")
    live = gateway.config_file.read_text()
    gateway.host = "256.0.0.1"  # not an address: `haproxy -c` refuses the rendered file
    with pytest.raises(DeployError, match="haproxy -c refused"):
        gateway.checked_config(gateway.table())
    assert gateway.config_file.read_text() == live
    assert not gateway.config_file.with_suffix(".cfg.new").exists()


def test_models_join_and_leave_the_running_gateway_without_a_reload(gateway) -> None:
    """Each model at /models/<name>/..., its running version at .../versions/<N>/..., the
    catalog at GET /models; a second model joins (and leaves) while the first is under load,
    through the Runtime API: no reload, no failed request, another name gets a 404 naming
    the models there."""
    (a, port_a), (b, port_b) = backend("a"), backend("b")
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        gateway.ensure()
        gateway.switch("m", [port_a], "1")
        gateway.publish({"m": {"model": "m", "state": "serving", "detail": "a; b \\ c"}})
        pid = int(gateway.pid_file.read_text())
        seen: Counter[str] = Counter()
        stop = threading.Event()
        threads = hammer(f"{base}/models/m/predict", seen, stop)
        stop.wait(0.3)
        gateway.switch("other-task", [port_b], "7")
        gateway.publish(
            {
                "m": {"model": "m", "state": "serving", "detail": "a; b \\ c"},
                "other-task": {"model": "other-task", "state": "serving"},
            }
        )
        assert httpx.post(f"{base}/models/other-task/predict", json={}).text == "b"
        assert httpx.post(f"{base}/models/other-task/metadata", json={}).text == "b:/metadata"
        assert httpx.post(f"{base}/predict", json={}).text == "a"  # the default model
        assert httpx.post(f"{base}/models/other-task/versions/7/predict", json={}).text == "b"
        missing = httpx.post(f"{base}/models/other-task/versions/6/predict", json={})
        assert missing.status_code == 404 and missing.json()["version"] == "6"
        catalog = httpx.get(f"{base}/models").json()
        assert [entry["model"] for entry in catalog] == ["m", "other-task"]
        assert catalog[0]["detail"] == "a; b \\ c"  # spaces, `;` and `\\` survive the CLI
        assert httpx.get(f"{base}/models/other-task").json()["state"] == "serving"
        unknown = httpx.post(f'{base}/models/hotel"rates/predict', json={})
        assert unknown.status_code == 404
        assert unknown.json() == {
            "error": "no such model",
            "model": "hotel%22rates",
            "models": ["m", "other-task"],
        }
        b.shutdown()
        b.server_close()  # other-task's only container dies: 503 for it, m keeps answering
        assert httpx.post(f"{base}/models/other-task/predict", json={}).status_code == 503
        gateway.remove("other-task")
        assert httpx.post(f"{base}/models/other-task/predict", json={}).status_code == 404
        stop.wait(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(seen) == {"a"} and seen["a"] > 20, seen
        assert int(gateway.pid_file.read_text()) == pid  # no restart, no reload
    finally:
        a.shutdown()
        b.shutdown()


def test_a_model_beyond_the_pool_gets_a_bigger_configuration(gateway) -> None:
    server, port = backend("a")
    try:
        gateway.ensure()
        for index in range(POOL + 1):
            gateway.switch(f"m{index}", [port], "1")
        assert gateway.table().pool == 2 * POOL
        last = f"http://127.0.0.1:{gateway.port}/models/m{POOL}/predict"
        assert httpx.post(last, json={}).text == "a"
    finally:
        server.shutdown()


def test_replicas_share_the_load_and_a_dead_one_is_not_seen(gateway) -> None:
    """deploy.replicas: the slot's servers are balanced, on the model's path and on its
    version's; a replica that dies costs no request
    (HAProxy retries on another); more replicas than the slots hold make a bigger
    configuration once."""
    (a, port_a), (b, port_b), (c, port_c) = backend("a"), backend("b"), backend("c")
    url = f"http://127.0.0.1:{gateway.port}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [port_a, port_b], "1")  # 2 > 1 server per slot: reloaded once
        assert gateway.table().replicas == 2
        version = f"http://127.0.0.1:{gateway.port}/models/m/versions/1/predict"
        with httpx.Client() as http:
            assert {http.post(url, json={}).text for _ in range(20)} == {"a", "b"}
            assert {http.post(version, json={}).text for _ in range(20)} == {"a", "b"}
            b.shutdown()
            b.server_close()  # replica b is gone: connections refused
            assert {http.post(url, json={}).status_code for _ in range(20)} == {200}
        pid = int(gateway.pid_file.read_text())
        gateway.switch("m", [port_c], "2")  # fewer replicas: the spare servers stay out
        assert {httpx.post(url, json={}).text for _ in range(10)} == {"c"}
        assert int(gateway.pid_file.read_text()) == pid
    finally:
        a.shutdown()
        c.shutdown()


def test_a_failed_switch_leaves_the_old_version_serving_alone(gateway) -> None:
    """A port HAProxy would take wrongly (it wraps 70000 to 4464) is refused before any step:
    the old version keeps every request. A refusal at each step of a switch:
    test_gateway_faults.py."""
    server, port = backend("a")
    url = f"http://127.0.0.1:{gateway.port}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [port], "1")
        with pytest.raises(DeployError, match="not a TCP port"):  # HAProxy would wrap it
            gateway.switch("m", [port, 70000], "2")
        assert {httpx.post(url, json={}).text for _ in range(20)} == {"a"}
        assert gateway.table().routes["m"].version == "1"
        base = f"http://127.0.0.1:{gateway.port}/models/m/versions"
        assert httpx.post(f"{base}/1/predict", json={}).text == "a"
        assert httpx.post(f"{base}/2/predict", json={}).status_code == 404
    finally:
        server.shutdown()


def test_a_gateway_of_an_older_format_is_reloaded_in_place(gateway) -> None:
    """A gateway an older maas started keeps running across the upgrade: the next ensure, or
    a model leaving before any, reloads it with the current configuration (same master, same
    listener) rather than feeding it maps that name backends it does not have."""
    (server, port), (other, other_port) = backend("a"), backend("b")
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        gateway.ensure()
        gateway.switch("m", [port], "1")
        gateway.switch("n", [other_port], "1")
        master, worker = gateway.pid_file.read_text(), gateway._worker()
        gateway.config_file.write_text(gateway.config_file.read_text().replace(FORMAT, "x"))
        gateway.ensure()
        assert gateway.pid_file.read_text() == master and gateway._worker() != worker
        assert FORMAT in gateway.config_file.read_text()
        assert httpx.post(f"{base}/predict", json={}).text == "a"
        worker = gateway._worker()
        gateway.config_file.write_text(gateway.config_file.read_text().replace(FORMAT, "x"))
        gateway.remove("n")  # no ensure first: the model leaves an old gateway
        assert gateway.pid_file.read_text() == master and gateway._worker() != worker
        assert httpx.post(f"{base}/predict", json={}).text == "a"  # the others still answer
        assert httpx.post(f"{base}/models/n/predict", json={}).status_code == 404
    finally:
        server.shutdown()
        other.shutdown()


def test_a_refused_step_after_the_switch_does_not_undo_it(gateway, monkeypatch) -> None:
    """Once the maps send the model to its new slot, a refusal to put the old slot in
    maintenance changes nothing for clients: the switch stands (no rollback to a slot the
    maps no longer name, which would leave the model on 503)."""
    (old, old_port), (new, new_port) = backend("old"), backend("new")
    url = f"http://127.0.0.1:{gateway.port}/models/m/predict"
    try:
        gateway.ensure()
        gateway.switch("m", [old_port], "1")
        expect = gateway._expect

        def refuse_maintenance(line: str, *accepted: str) -> str:
            if line.endswith("state maint") and "-blue/" in line:  # the old, live slot
                raise DeployError("the gateway refused it")
            return expect(line, *accepted)

        monkeypatch.setattr(gateway, "_expect", refuse_maintenance)
        gateway.switch("m", [new_port], "2")
        assert {httpx.post(url, json={}).text for _ in range(10)} == {"new"}
        assert gateway.table().routes["m"].version == "2"
    finally:
        old.shutdown()
        new.shutdown()


def test_an_address_held_by_another_process_is_refused(tmp_path: Path) -> None:
    """Anything listening on deploy.address (a `maas serve`, another project) used to count as
    our gateway, and the controller recorded a deploy while something else answered."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        gateway = Gateway(tmp_path, "127.0.0.1", holder.getsockname()[1])
        with pytest.raises(DeployError, match="held by another process"):
            gateway.ensure()
        assert not gateway.running()


def test_a_relative_state_folder_works(tmp_path: Path, monkeypatch) -> None:
    """deploy.state_dir is relative by default (.maas/deploy): HAProxy would read a relative
    socket path as host:port."""
    monkeypatch.chdir(tmp_path)
    server, port = backend("a")
    gateway = Gateway(Path(".maas/deploy"), "127.0.0.1", free_port(), default="m")
    try:
        gateway.ensure()
        gateway.switch("m", [port], "1")
        assert httpx.post(f"http://127.0.0.1:{gateway.port}/predict", json={}).text == "a"
    finally:
        gateway.stop()
        server.shutdown()


@pytest.mark.parametrize("version", ["2\nshow info", "2;x", "", "v2", "1" * 10])
def test_a_version_that_is_not_a_number_never_reaches_the_runtime_api(
    tmp_path: Path, version: str
) -> None:
    """A version string reaches the Runtime API's command lines (the version map), where a
    newline would start a command of its own: only digits pass, before anything is read or
    sent (issue 27 item 13)."""
    gateway = Gateway(tmp_path / "gw", "127.0.0.1", free_port())
    with pytest.raises(DeployError, match="is not a version number"):
        gateway.switch("m", [8081], version)
    assert not (tmp_path / "gw" / "gateway.json").exists()  # nothing was recorded
