"""The gateway's limits, on the real HAProxy: a catalog of any size (issue 29 item 2), any
project path (item 9), a private admin socket, maxconn and a per-client rate limit (issue 27
item 13)."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from maas.config.sections import GatewayParams
from maas.net import free_port
from maas.operate.gateway import Gateway
from tests.unit.operate.gateway_backends import backend, needs_haproxy

MODELS = 200


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    needs_haproxy()


def entry(name: str) -> dict[str, object]:
    """A catalog entry as the controller writes one (maas.operate.catalog), 20 input fields."""
    inputs = [{"name": f"field_{i}", "type": "float", "optional": False} for i in range(20)]
    base = f"/models/{name}"
    return {
        "model": name,
        "task": name,
        "kind": "binary",
        "state": "serving",
        "champion_state": "serving",
        "champion_version": "12",
        "served_version": "12",
        "endpoint": f"http://127.0.0.1:3000{base}",
        "deployed_at": "2026-12-07T08:00:00Z",
        "replicas": 1,
        "inputs": inputs,
        "detail": "",
        "paths": {"predict": f"{base}/predict", "metadata": f"{base}/metadata"},
    }


def test_the_catalog_lists_every_model_and_never_keeps_the_gateway_from_starting(
    tmp_path: Path,
) -> None:
    """GET /models used to be one HAProxy map value (at most 12,000 bytes): the 27th model's
    publish was refused, and one recorded on a stopped gateway kept it from starting. 200
    models, published while it is stopped, then read back through it."""
    server, port = backend("a")
    gateway = Gateway(tmp_path, "127.0.0.1", free_port(), default="m0")
    base = f"http://127.0.0.1:{gateway.port}"
    catalog = {f"m{i}": entry(f"m{i}") for i in range(MODELS)}
    try:
        gateway.publish(catalog)  # stopped: recorded, as the controller does before a start
        gateway.ensure()
        gateway.switch("m0", [port], "1")
        started = time.perf_counter()
        listed = httpx.get(f"{base}/models")
        took = time.perf_counter() - started
        assert listed.status_code == 200
        assert [e["model"] for e in listed.json()] == sorted(catalog)  # all 200
        assert listed.json()[0] == catalog["m0"]  # with their input fields
        print(f"GET /models: {MODELS} entries, {len(listed.content)} bytes, {took * 1000:.1f} ms")
        assert httpx.get(f"{base}/models/m199").json() == catalog["m199"]
        assert httpx.post(f"{base}/models/m0/predict", json={}).text == "a"
        unknown = httpx.post(f"{base}/models/nope/predict", json={})
        assert unknown.status_code == 404 and unknown.json()["models"] == ["m0"]
        big = {"m0": {**entry("m0"), "detail": "x" * 40_000}}  # over HAProxy's 16 KiB buffer
        gateway.publish(big)
        assert httpx.get(f"{base}/models/m0").json() == big["m0"]
        assert len(httpx.get(f"{base}/models").json()) == 1
        assert httpx.get(f"{base}/models/m199").status_code == 404  # left the catalog
    finally:
        gateway.stop()
        server.shutdown()


@pytest.mark.parametrize("name", ["my projé #'", "$HOME ü"])
def test_a_project_path_with_a_space_and_non_ascii_characters_deploys(
    tmp_path: Path, name: str
) -> None:
    """`haproxy -c` refused the configuration of a project at `/home/x/my project`: every path
    it names is in its own folder (by file name) or quoted; HAProxy expands `$` in the
    socket's address however quoted, so such a socket is in a private folder elsewhere."""
    server, port = backend("a")
    folder = tmp_path / name / "d"  # short: the socket in it too (HAProxy takes 97 bytes)
    gateway = Gateway(folder, "127.0.0.1", free_port(), default="m")
    base = f"http://127.0.0.1:{gateway.port}"
    try:
        gateway.ensure()  # checks the configuration with the real `haproxy -c` first
        gateway.switch("m", [port], "1")
        gateway.publish({"m": {"model": "m", "state": "serving"}})
        assert httpx.post(f"{base}/predict", json={}).text == "a"
        assert httpx.post(f"{base}/models/m/versions/1/predict", json={}).text == "a"
        assert httpx.get(f"{base}/models").json() == [{"model": "m", "state": "serving"}]
        inside = gateway.socket_file.parent == folder / "admin"
        fits = len(os.fsencode(folder / "admin" / "gateway.sock")) <= 97  # pytest's tmp path
        assert inside == ("$" not in name and fits) and gateway.socket_file.is_socket()
    finally:
        gateway.stop()
        server.shutdown()


def test_the_admin_socket_is_never_in_a_folder_others_can_write(tmp_path: Path) -> None:
    """The admin socket changes what every model serves. Where the state folder's path is too
    long for a Unix socket it used to be /tmp/maas-gateway-<digest>.sock, a name another local
    user could take first; now it is in a private folder (0700) of a random name, found again
    by the next process."""
    server, port = backend("a")
    long = tmp_path / ("x" * 60) / ("y" * 60) / ".maas" / "deploy"
    gateway = Gateway(long, "127.0.0.1", free_port(), default="m")
    try:
        gateway.ensure()
        gateway.switch("m", [port], "1")
        socket_file = gateway.socket_file
        assert len(os.fsencode(socket_file)) <= 97 and stat.S_ISSOCK(socket_file.stat().st_mode)
        for folder in (socket_file.parent, long / "admin"):
            mode = stat.S_IMODE(folder.stat().st_mode)
            assert mode & 0o077 == 0, oct(mode)  # nobody else may enter, let alone write
            assert folder.stat().st_uid == os.getuid()
        assert socket_file.parent != Path(tempfile.gettempdir())
        again = Gateway(long, "127.0.0.1", gateway.port, default="m")  # a later process
        assert again.socket_file == socket_file and again.running()
        again.switch("m", [port], "2")
        base = f"http://127.0.0.1:{gateway.port}/models/m/versions/2/predict"
        assert httpx.post(base, json={}).text == "a"
        gateway.stop()  # its short folder goes with it: a start makes a new one
        assert not socket_file.parent.exists()
        gateway.ensure()
        assert gateway.socket_file.parent != socket_file.parent
        assert httpx.post(base, json={}).text == "a"
    finally:
        gateway.stop()
        server.shutdown()


def test_maxconn_is_configured_and_a_client_over_the_rate_limit_gets_429(tmp_path: Path) -> None:
    """deploy.gateway: maxconn (4096 by default) in the configuration; rate_limit (off by
    default) requests per client address per 10 s, the next one answered 429."""
    server, port = backend("a")
    limits = GatewayParams(maxconn=300, rate_limit=5)
    gateway = Gateway(tmp_path / "limited", "127.0.0.1", free_port(), default="m", limits=limits)
    free = Gateway(tmp_path / "free", "127.0.0.1", free_port(), default="m")
    try:
        for each in (gateway, free):
            each.ensure()
            each.switch("m", [port], "1")
        assert "maxconn 300" in gateway.config_file.read_text()
        assert "maxconn 4096" in free.config_file.read_text()
        url = f"http://127.0.0.1:{gateway.port}/predict"
        with httpx.Client() as http:
            codes = [http.post(url, json={}).status_code for _ in range(8)]
        assert codes == [200] * 5 + [429] * 3
        with httpx.Client() as http:  # off by default: the benchmarks' rates pass
            url = f"http://127.0.0.1:{free.port}/predict"
            assert {http.post(url, json={}).status_code for _ in range(50)} == {200}
    finally:
        gateway.stop()
        free.stop()
        server.shutdown()


CHILD = """
import resource, sys
from pathlib import Path
import httpx
from maas.net import free_port
from maas.operate.gateway import Gateway
from tests.unit.operate.gateway_backends import backend
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # a user's usual hard limit
server, port = backend("a")
gateway = Gateway(Path(sys.argv[1]), "127.0.0.1", free_port(), default="m")
try:
    gateway.ensure()
    gateway.switch("m", [port], "1")
    print(httpx.post(f"http://127.0.0.1:{gateway.port}/predict", json={}).text)
finally:
    gateway.stop()
"""


def test_maxconn_fits_the_file_limit_haproxy_inherits(tmp_path: Path) -> None:
    """Under a hard file limit of 1024 HAProxy refuses to start with maxconn 4096 ("Cannot
    raise FD limit to 8209"): the gateway configures what fits and starts."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0 and done.stdout.strip() == "a", done.stderr[-2000:]
    assert "maxconn 480" in (tmp_path / "gateway.cfg").read_text()
