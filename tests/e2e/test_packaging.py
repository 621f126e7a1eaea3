"""A version trained by the real pipeline becomes a real, validated container image."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from maas.cli import app
from maas.net import free_port
from maas.release import containers
from maas.release.bento import bento_model_tag
from maas.release.containers import wait_ready
from maas.release.packaging import package_version
from maas.tracking.registry import logged_model_id, release_tag
from maas.tracking.store import connect
from tests.e2e.helpers import TRAINED_MODEL, container_runtime_or_skip
from tests.helpers import RECORD_FIELDS, ROOT, WEATHER_FIELDS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PARAMS = str(ROOT / "params.yaml")
MODEL = TRAINED_MODEL


@pytest.fixture(scope="module")
def project(trained_project):
    return trained_project


@pytest.fixture(scope="module")
def packaged(project):
    runtime = container_runtime_or_skip()
    _, _, params = project
    result = package_version(
        connect(params.registry),
        params.registry,
        params.packaging,
        params.serving,
        "champion",
        verdict_key_file=params.promotion.verdict_key_file,
    )
    # The image stays: the promotion tests deploy this version from it, as the controller
    # reuses a version's validated image (removing it would also drop the build's cached
    # dependency layer, ~25 s to rebuild). tests/conftest.py prunes what is left.
    return result, runtime


@pytest.fixture(scope="module")
def endpoint(packaged):
    """The packaged image running on a free port, as a deployment would run it."""
    result, runtime = packaged
    port = free_port()
    container = containers.run_container(runtime, result.image, f"maas-e2e-{port}", port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(base_url, 120), containers.container_logs(runtime, container)
        yield base_url
    finally:
        containers.remove_container(runtime, container)


def december_records(project, rows: int) -> pd.DataFrame:
    root, _, _ = project
    frame = pd.read_parquet(root / "raw" / "2013-12.parquet")
    return frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].sample(n=rows, random_state=1)


def test_package_builds_a_validated_non_root_image_and_tags_the_version(project, packaged):
    _, _, params = project
    result, runtime = packaged
    assert result.image.startswith(f"maas-{MODEL}:v1-") and result.version == "1"
    assert result.infra_validation == "passed"
    assert result.image_user == "bentoml"  # not root
    assert {"p50", "p99", "cold_start_to_ready"} <= set(result.latency_ms)
    info = containers.inspect_image(runtime, result.image)
    assert info is not None and info.id == result.image_id
    tags = MlflowClient(params.registry.tracking_uri).get_model_version(MODEL, "1").tags
    assert tags["bento_tag"] == result.bento_tag and tags["image"] == result.image
    assert tags["image_id"] == result.image_id
    assert int(tags["image_size_bytes"]) == result.image_size_bytes
    assert tags["infra_validation"] == "passed" and tags["packaged_at"].endswith("Z")


def test_image_holds_only_what_serving_needs(packaged):
    import bentoml

    result, runtime = packaged
    dockerfile = Path(bentoml.bentos.get(result.bento_tag).path, "env/docker/Dockerfile")
    text = dockerfile.read_text()
    assert "apt-get" not in text  # the base image already has Python: no apt layer
    assert "USER bentoml" in text
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('torch','mlflow','prefect','great_expectations','dvc','pandas')"
        " if u.find_spec(m)])"
    )
    out = subprocess.run(
        [
            runtime,
            "run",
            "--rm",
            "--entrypoint",
            "/app/.venv/bin/python",
            result.image,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_the_image_installs_exactly_the_hashed_lock(packaged):
    """Issue 27.12: the Bento installs the lock verbatim (hash-checking on, no unhashed line
    of BentoML's own), and every distribution in the image is a locked one at its version."""
    import bentoml
    from packaging.utils import canonicalize_name

    from maas.release.serving_lock import LOCK, parse_lock

    result, runtime = packaged
    lock = parse_lock(LOCK.read_text())
    installed = Path(bentoml.bentos.get(result.bento_tag).path, "env/python/requirements.txt")
    assert parse_lock(installed.read_text()) == lock and lock.require_hashes
    probe = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    python = ["--entrypoint", "/app/.venv/bin/python"]
    out = subprocess.run(
        [runtime, "run", "--rm", *python, result.image, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = {canonicalize_name(name): v for name, v in json.loads(out.stdout).items()}
    assert found == {name: locked.version for name, locked in lock.packages.items()}


def test_container_predicts_like_the_pyfunc_on_december(project, endpoint):
    import mlflow

    _, _, params = project
    records = december_records(project, 300)
    payload = {"flights": json.loads(records.to_json(orient="records"))}
    response = httpx.post(f"{endpoint}/predict", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 300
    mlflow.set_tracking_uri(params.registry.tracking_uri)
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(records)
    got = pd.Series([p["delay_probability"] for p in body["predictions"]])
    assert (got - expected["delay_probability"].to_numpy()).abs().max() <= 1e-5
    assert [p["delayed"] for p in body["predictions"]] == list(expected["delayed"])


@pytest.fixture
def neighbour(tmp_path):
    """A network neighbour of the test's own: a namespace joined to the host by a veth pair
    (host 10.77.0.1, neighbour 10.77.0.2). Traffic goes only from inside it to the veth's host
    address (docs of the sandbox: /work/shared/STACK.md). Yields a function that says whether
    a TCP connection from the neighbour to 10.77.0.1:port is accepted."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    name = f"maas-t{os.getpid() % 100000}"
    host, peer = f"{name}-h"[:15], f"{name}-p"[:15]
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", name],
        ["ip", "addr", "add", "10.77.0.1/24", "dev", host],
        ["ip", "link", "set", host, "up"],
        ["ip", "-n", name, "addr", "add", "10.77.0.2/24", "dev", peer],
        ["ip", "-n", name, "link", "set", peer, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)

        def reaches(port: int) -> bool:
            probe = (
                "import socket,sys\n"
                "try:\n socket.create_connection(('10.77.0.1', int(sys.argv[1])), timeout=3)\n"
                "except OSError: sys.exit(1)\n"
            )
            done = subprocess.run(
                ["ip", "netns", "exec", name, sys.executable, "-c", probe, str(port)],
                capture_output=True,
                timeout=30,
            )
            return done.returncode == 0

        yield reaches
    finally:
        subprocess.run(["ip", "link", "del", host], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_a_replica_is_confined_and_not_reachable_from_the_network(
    project, packaged, endpoint, neighbour
):
    """Issue 27 items 6 and 7, on the running container: a neighbour on the host's network
    cannot reach the replica's port (it listened on 0.0.0.0 with `--network host`), while a
    listener of the test on every interface is reachable from it (the probe can tell); the
    root file system is read-only, the processes hold no capabilities and cannot gain any,
    memory and processes are limited; and it still predicts."""
    _, runtime = packaged
    port = int(endpoint.rsplit(":", 1)[1])
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    assert listening.stdout.split() and all(
        line.split()[3] == f"127.0.0.1:{port}" for line in listening.stdout.strip().splitlines()
    ), listening.stdout
    with socket.create_server(("0.0.0.0", 0)) as control:
        assert neighbour(control.getsockname()[1])  # the probe reaches an open port
    assert not neighbour(port)

    container = _container_of(endpoint)
    info = json.loads(containers.run_tool([runtime, "container", "inspect", container]))[0]
    config = info["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    assert config["Memory"] == 2048 << 20 and config["PidsLimit"] == 1024
    assert "no-new-privileges" in " ".join(config.get("SecurityOpt") or [])
    written = subprocess.run(
        [runtime, "exec", container, "sh", "-c", "touch /home/bentoml/x || touch /x"],
        capture_output=True,
        text=True,
    )
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    pids = [int(info["State"]["Pid"])]
    pids += [int(p) for p in Path(f"/proc/{pids[0]}/task/{pids[0]}/children").read_text().split()]
    for pid in pids:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        assert int(status["CapEff"].strip(), 16) == 0 and int(status["CapPrm"].strip(), 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
    records = december_records(project, 5)
    payload = {"flights": json.loads(records.to_json(orient="records"))}
    assert httpx.post(f"{endpoint}/predict", json=payload, timeout=30).status_code == 200


def test_metadata_and_health(endpoint):
    meta = httpx.post(f"{endpoint}/metadata", json={}, timeout=10).json()
    assert meta["model_name"] == MODEL and meta["model_version"] == "1"
    assert set(meta["test_partitions"]) == {"2013-12"}
    assert set(meta["sha256"]) == {"model.onnx", "preprocessing.json", "model_config.json"}
    assert {"roc_auc", "pr_auc"} <= set(meta["test_metrics"])
    assert httpx.get(f"{endpoint}/readyz", timeout=5).status_code == 200
    assert httpx.get(f"{endpoint}/livez", timeout=5).status_code == 200


GOOD = {
    "month": 12,
    "day": 3,
    "sched_dep_time": 900,
    "sched_arr_time": 1200,
    "carrier": "AA",
    "origin": "JFK",
    "dest": "LAX",
    "distance": 2475,
}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"flights": [{k: v for k, v in GOOD.items() if k != "dest"}]}, "dest"),
        ({"flights": [{**GOOD, "sched_arr_time": "noon"}]}, "sched_arr_time"),
        ({"flights": [{**GOOD, "distance": -5}]}, "distance"),
        ({"flights": [{**GOOD, "sched_dep_time": 2400}]}, "sched_dep_time"),
        ({"flights": [{**GOOD, "wind_speed": "high"}]}, "wind_speed"),
        ({"flights": []}, "flights"),
        ({"flights": [GOOD] * 1001}, "flights"),
        ({"flights": {"not": "a list"}}, "flights"),
        ({"planes": [GOOD]}, "flights"),
        ({"records": [GOOD]}, "flights"),  # another task's body key
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(endpoint, body, names):
    response = httpx.post(f"{endpoint}/predict", json=body, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert names in response.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"flights": [{"month": 1, "day": 1, "sched_dep_time": 900, "sched_arr_time": 1200, '
        b'"carrier": "AA", "origin": "JFK", "dest": "LAX", "distance": 2475, "temp": NaN}]}',
        b'{"flights": [{"month": 1, "day": 1, "sched_dep_time": 900, "sched_arr_time": 1200, '
        b'"carrier": "AA", "origin": "JFK", "dest": "LAX", "distance": Infinity}]}',
        b"this is not json",
        b'{"flights": [',
    ],
)
def test_non_json_and_non_finite_numbers_get_a_4xx(endpoint, raw):
    response = httpx.post(
        f"{endpoint}/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


def test_unknown_categories_get_a_prediction_and_the_service_keeps_answering(endpoint):
    body = {"flights": [{**GOOD, "carrier": "ZZ", "origin": "BOS", "dest": "NOPE"}, GOOD]}
    response = httpx.post(f"{endpoint}/predict", json=body, timeout=10)
    assert response.status_code == 200
    probs = [p["delay_probability"] for p in response.json()["predictions"]]
    assert all(0 < p < 1 for p in probs)


def test_packaging_again_reuses_the_bento_image_and_validation(project, packaged):
    _, _, params = project
    first, _ = packaged
    again = package_version(
        connect(params.registry),
        params.registry,
        params.packaging,
        params.serving,
        "1",
        verdict_key_file=params.promotion.verdict_key_file,
    )
    assert again.reused == ["bento", "image", "infra_validation"]
    assert (again.bento_tag, again.image_id) == (first.bento_tag, first.image_id)


def test_maas_serve_answers_locally(project):
    root, overrides, _ = project
    port = free_port()
    sets = [arg for item in overrides for arg in ("--set", item)]
    server = subprocess.Popen(
        [sys.executable, "-m", "maas.cli", "serve", "1", "--port", str(port), "-p", PARAMS, *sets],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
    )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}", 90, alive=lambda: server.poll() is None)
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"flights": [GOOD]})
        assert response.status_code == 200 and response.json()["model_version"] == "1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_without_a_container_backend_only_the_bento_is_built(project, monkeypatch, tmp_path):
    root, overrides, params = project
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no docker/podman/buildah
    monkeypatch.chdir(ROOT)
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["package", "1", "-p", PARAMS, *sets])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "no image built" in said and "podman is not installed" in said
    result = CliRunner().invoke(app, ["package", "1", "--require-image", "-p", PARAMS, *sets])
    assert result.exit_code == 1


def test_a_tampered_artifact_is_refused(project, packaged, tmp_path):
    """Last: it removes the version's BentoML model so the download is verified again."""
    import bentoml

    root, overrides, params = project
    client = connect(params.registry)
    version = client.get_model_version(MODEL, "1")
    bento_model = bento_model_tag(MODEL, release_tag(version))
    bentoml.models.delete(bento_model)
    location = client.get_logged_model(logged_model_id(version)).artifact_location
    stored = Path(location.removeprefix("file://")) / "artifacts" / "model.onnx"
    backup = tmp_path / "model.onnx"
    shutil.copy(stored, backup)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    try:
        sets = [arg for item in overrides for arg in ("--set", item)]
        result = CliRunner().invoke(app, ["package", "1", "-p", PARAMS, *sets])
        assert result.exit_code == 1
        said = " ".join(result.output.split())
        assert "model.onnx" in said and "modified" in said
        with pytest.raises(bentoml.exceptions.NotFound):
            bentoml.models.get(bento_model)  # nothing half-made was kept
    finally:
        shutil.copy(backup, stored)


def test_the_local_target_runs_the_validated_image_not_what_its_tag_names_now(packaged, tmp_path):
    """After infra-validation the tag is moved to another image (a rebuild, a pull, a person
    retagging): the deploy target runs the image that passed, by ID."""
    from maas.operate.targets import LocalTarget

    result, runtime = packaged
    moved = "localhost/maas-e2e-moved:v1"
    subprocess.run([runtime, "tag", result.image_id, moved], check=True, capture_output=True)
    base = containers.inspect_image(runtime, "localhost/maas-base:bookworm")
    assert base is not None
    subprocess.run([runtime, "tag", base.id, moved], check=True, capture_output=True)
    target = LocalTarget(tmp_path / "deploy", f"127.0.0.1:{free_port()}", runtime)
    try:
        deployment = target.deploy(MODEL, "1", moved, result.image_id)
        served = httpx.post(f"{deployment.endpoint}/metadata", json={}, timeout=10).json()
        assert served["model_version"] == "1"
        assert (
            containers.run_tool(
                [runtime, "container", "inspect", "--format", "{{.Image}}", deployment.container]
            ).strip()
            == result.image_id
        )
        assert deployment.image == moved and deployment.image_id == result.image_id
    finally:
        target.stop_all()
        subprocess.run([runtime, "rmi", moved], capture_output=True)


def _container_of(endpoint: str) -> str:
    return f"maas-e2e-{endpoint.rsplit(':', 1)[1]}"  # the endpoint fixture's name


def test_schemathesis_fuzz_finds_no_server_error_and_no_schema_violation(endpoint):
    """Property-based requests from the service's own OpenAPI document (all checks:
    no 5xx, responses match their schema, invalid data rejected, valid data accepted)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{endpoint}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        "300",
        "--workers",
        "1",
        "--seed",
        "1",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env={**os.environ, "NO_COLOR": "1"}
    )
    summary = done.stdout[-2500:]
    print(next((line.strip() for line in summary.splitlines() if "generated" in line), summary))
    assert done.returncode == 0, summary
    assert "generated" in summary and "failure" not in summary.split("SUMMARY")[-1].lower()


def test_hostile_requests_get_4xx_memory_stays_bounded_and_others_keep_answering(
    packaged, endpoint
):
    _, runtime = packaged
    container = _container_of(endpoint)
    url = f"{endpoint}/predict"
    flight = {
        "month": 12,
        "day": 3,
        "sched_dep_time": 900,
        "sched_arr_time": 1200,
        "carrier": "AA",
        "origin": "JFK",
        "dest": "LAX",
        "distance": 2475,
    }
    json_headers = {"content-type": "application/json"}
    port = int(endpoint.rsplit(":", 1)[1])

    class Status:
        def __init__(self, code: int) -> None:
            self.status_code = code

    def raw_status(request: bytes) -> Status:  # what httpx will not send: a lying header
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            return Status(int(sock.recv(1024).split(b" ", 2)[1]))

    def chunked_body():
        yield b'{"flights":['
        for _ in range(20_000):
            yield json.dumps(flight).encode() + b","
        yield json.dumps(flight).encode() + b"]}"

    hostile = {
        "deeply nested": (
            lambda: httpx.post(
                url,
                headers=json_headers,
                content=b'{"flights":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            ),
            400,
        ),
        "100k-record list": (lambda: httpx.post(url, json={"flights": [flight] * 100_000}), 413),
        "chunked 3 MB body": (
            lambda: httpx.post(url, headers=json_headers, content=chunked_body()),
            413,
        ),
        "1 MB string": (
            lambda: httpx.post(url, json={"flights": [{**flight, "carrier": "A" * 1_000_000}]}),
            400,
        ),
        "1001 records": (lambda: httpx.post(url, json={"flights": [flight] * 1001}), 400),
        "multipart": (lambda: httpx.post(url, files={"f": b"x"}), 415),
        "declared 1 GB": (
            lambda: raw_status(
                b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: 1073741824\r\n\r\n{"
            ),
            413,
        ),
    }
    assert httpx.post(url, json={"flights": [flight]}).status_code == 200  # warm
    before = containers.container_rss_bytes(runtime, container)
    for _ in range(3):
        for name, (send, expected) in hostile.items():
            try:
                status = send().status_code
            except httpx.RemoteProtocolError:  # the 413 arrived before the body was sent
                status = 413
            assert status == expected, name
    # Slow clients hold connections open, trickling bytes; everyone else is still served.
    slow = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"flights": ['
        )
        slow.append(sock)
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:
        answered = [client.post(url, json={"flights": [flight]}).status_code for _ in range(50)]
    took = time.monotonic() - started
    for sock in slow:
        sock.close()
    after = containers.container_rss_bytes(runtime, container)
    print(
        f"hostile requests: RSS {before / 1e6:.0f} -> {after / 1e6:.0f} MB; 50 requests "
        f"beside 20 slow clients in {took:.2f}s"
    )
    assert answered == [200] * 50 and took < 10
    assert after - before < 64e6, (before, after)


def test_bearer_token_from_the_environment_guards_the_api(packaged, monkeypatch):
    result, runtime = packaged
    token = f"tok-{secrets.token_hex(16)}"
    monkeypatch.setenv("MAAS_API_TOKEN", token)
    port = free_port()
    name = f"maas-e2e-auth-{port}"
    containers.run_container(runtime, result.image, name, port, pass_env=["MAAS_API_TOKEN"])
    base = f"http://127.0.0.1:{port}"
    body = {
        "flights": [
            {
                "month": 12,
                "day": 3,
                "sched_dep_time": 900,
                "sched_arr_time": 1200,
                "carrier": "AA",
                "origin": "JFK",
                "dest": "LAX",
                "distance": 2475,
            }
        ]
    }
    try:
        assert wait_ready(base, 120), containers.container_logs(runtime, name)  # probes open
        missing = httpx.post(f"{base}/predict", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith(
            "Bearer"
        )
        wrong = httpx.post(f"{base}/predict", json=body, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/predict", json=body, headers=auth).status_code == 200
        assert httpx.post(f"{base}/metadata", json={}, headers=auth).status_code == 200
        assert httpx.post(f"{base}/metadata", json={}).status_code == 401
        # The token is in no log, image layer or image configuration.
        logs = containers.container_logs(runtime, name, lines=10_000)
        image = subprocess.run(
            [runtime, "image", "inspect", result.image], capture_output=True, text=True
        ).stdout
        history = subprocess.run(
            [runtime, "history", "--no-trunc", result.image], capture_output=True, text=True
        ).stdout
        assert token not in logs + image + history
    finally:
        containers.remove_container(runtime, name)


def test_soak_script_holds_rate_without_errors(packaged, tmp_path):
    """`make soak` runs 10 minutes; here 20 s, to keep the script itself working."""
    result, _ = packaged
    report = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--image",
            result.image,
            "--seconds",
            "20",
            "--rate",
            "100",
            "--warmup",
            "5",
            "--max-growth",
            "0.25",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(done.stdout.strip())
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    body = json.loads(report.read_text())
    # every one of the 2,000 planned requests went out and was answered, and the rate held
    assert body["planned"] == 2000 and body["sent"] == body["planned"], body
    assert body["failures"] == {} and body["ok"] == body["sent"], body
    assert body["max_lag_s"] < 2.0, body


def test_batch_scoring_answers_as_the_running_container_does(project, endpoint, tmp_path):
    """Issue 31.2: `maas score` over a table and the served container over HTTP give the same
    outputs for the same records, an unknown category and a left-out optional field among
    them; a record the service refuses with a 400 is a refused row of the batch."""
    import pyarrow.parquet as pq

    _, overrides, _ = project
    records = december_records(project, 120).reset_index(drop=True)
    records.loc[0, "carrier"] = "ZZ"
    records.loc[1, "temp"] = None
    source = tmp_path / "records.parquet"
    records.to_parquet(source, index=False, row_group_size=50)
    output = tmp_path / "scored.parquet"
    ran = CliRunner().invoke(
        app,
        [
            "score",
            "--params",
            PARAMS,
            *[f"--set={o}" for o in overrides],
            "--input",
            str(source),
            "--output",
            str(output),
            "--workers",
            "2",
            "--json",
        ],
    )
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)  # --json: stdout holds the JSON alone
    assert summary["rows"] == 120 and summary["errors"] == 0 and summary["version"] == "1"
    payload = {"flights": json.loads(records.to_json(orient="records"))}
    served = httpx.post(f"{endpoint}/predict", json=payload, timeout=30).json()["predictions"]
    scored = pq.read_table(output).to_pylist()
    assert [r["delay_probability"] for r in scored] == pytest.approx(
        [p["delay_probability"] for p in served], abs=1e-6
    )
    assert [r["delayed"] for r in scored] == [p["delayed"] for p in served]
    assert [r["unknown_inputs"] for r in scored] == [p["unknown_inputs"] for p in served]
    assert scored[0]["unknown_inputs"] == ["carrier"]
