"""The promotion controller, as real processes: champion moves → that version serves.

`maas watch` runs as its own process against the real registry and podman; requests go to
the stable address the whole time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from maas.audit import AuditTrail
from maas.cli import app
from maas.net import free_port
from maas.operate.targets import LocalTarget
from maas.release import containers
from maas.release.packaging import package_version
from maas.tracking.store import connect
from tests.e2e.helpers import (
    PARAMS,
    TRAINED_MODEL,
    Controller,
    Load,
    Process,
    container_runtime_or_skip,
    register_again,
    serving_version,
    wait_for_line,
    wait_for_version,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = TRAINED_MODEL


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def setup(trained_project):
    """v1 (champion, trained by the flow), v2 (passes the gate, not promoted), v3 (fails the
    gate): v2 and v3 are v1's model registered again with those verdicts, signed as the
    pipeline signs (the controller's tests need versions, not new weights)."""
    from maas.config import load_params

    runtime = container_runtime_or_skip()
    root, overrides, _ = trained_project
    overrides = [
        *overrides,
        f"deploy.address=127.0.0.1:{free_port()}",
        f"deploy.webhook_listen=127.0.0.1:{free_port()}",
        f"deploy.ui_address=127.0.0.1:{free_port()}",
        f"deploy.webhook_secret_file={root / 'webhook.secret'}",
    ]
    assert register_again(overrides, passed=True, promoted=False, why="test: v2") == "2"
    assert register_again(overrides, passed=False, promoted=False, why="test: v3") == "3"
    params = load_params(PARAMS, overrides)
    client = MlflowClient(params.registry.tracking_uri)
    assert client.get_model_version(MODEL, "3").tags["gate_passed"] == "false"
    # each test finds v1's validated image, in whatever order it runs; v2 is packaged ahead by
    # the first controller that is idle (packaging.prepare_newest), or at its promotion
    for version in ("1",):
        package_version(
            connect(params.registry),
            params.registry,
            params.packaging,
            params.serving,
            version,
            verdict_key_file=params.promotion.verdict_key_file,
        )
    target = LocalTarget(params.deploy.state_dir, params.deploy.address, runtime)
    yield root, overrides, params, client
    target.stop_all()


def cli(overrides, *args: str):
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = CliRunner().invoke(app, [*args, "-p", PARAMS, *sets])
    assert result.exit_code == 0, result.output
    return result


def promote(overrides, version: str) -> None:
    cli(overrides, "promote", version)


def test_champion_moves_serve_rollback_refuse_and_restart(setup):
    root, overrides, params, client = setup
    endpoint = f"http://{params.deploy.address}"
    controller = Controller(root, overrides)
    try:
        first = wait_for_version(endpoint, "1")
        print(f"controller start -> v1 serving: {first:.1f}s")
        packaged_v1 = client.get_model_version(MODEL, "1").tags["packaged_at"]
        # idle, the controller packages v2 (the newest version that passed the gate) ahead
        deadline = time.monotonic() + 180
        while "packaged_at" not in client.get_model_version(MODEL, "2").tags:
            assert time.monotonic() < deadline, client.get_model_version(MODEL, "2").tags
            time.sleep(0.5)
        packaged_v2 = client.get_model_version(MODEL, "2").tags["packaged_at"]
        assert client.get_model_version(MODEL, "2").tags["infra_validation"] == "passed"
        assert "infra_validation" not in client.get_model_version(MODEL, "3").tags  # refused

        # Promote v2 while a client keeps sending requests to the stable address.
        with Load(endpoint) as load:
            promote(overrides, "2")
            latency = wait_for_version(endpoint, "2")
            # The release records its tags after the old container's drain and removal.
            deadline = time.monotonic() + 60
            while client.get_model_version(MODEL, "2").tags.get("deploy_status") != "deployed":
                assert time.monotonic() < deadline, client.get_model_version(MODEL, "2").tags
                time.sleep(0.5)
            seen = load.assert_served_only({"1", "2"}, at_least=20)  # no failed request
        print(f"promote v2 -> v2 serving: {latency:.1f}s; requests during the switch: {seen}")
        tags = client.get_model_version(MODEL, "2").tags
        assert tags["deploy_status"] == "deployed"
        assert tags["endpoint"] == f"{endpoint}/models/{MODEL}"
        assert tags["packaged_at"] == packaged_v2  # the release reused what was packaged ahead

        # Rollback under load: v1 serves again from its existing image, no request fails.
        with Load(endpoint) as load:
            cli(overrides, "rollback")
            latency = wait_for_version(endpoint, "1")
            deadline = time.monotonic() + 60  # until v2's replica is drained and removed
            while client.get_model_version(MODEL, "2").tags.get("deploy_status") == "deployed":
                assert time.monotonic() < deadline, client.get_model_version(MODEL, "2").tags
                time.sleep(0.5)
            seen = load.assert_served_only({"1", "2"}, at_least=20)
        print(f"rollback -> v1 serving: {latency:.1f}s; requests during it: {seen}")
        # its image was reused: packaging did not run again
        assert client.get_model_version(MODEL, "1").tags["packaged_at"] == packaged_v1

        # A version that failed the gate is refused; v1 keeps serving.
        promote(overrides, "3")
        deadline = time.monotonic() + 60
        while client.get_model_version(MODEL, "3").tags.get("deploy_status") != "refused":
            assert time.monotonic() < deadline, "v3 was not refused"
            time.sleep(0.5)
        assert "did not pass the gate" in client.get_model_version(MODEL, "3").tags["deploy_reason"]
        assert serving_version(endpoint) == "1"

        # Controller killed, alias moved meanwhile, controller restarted: it converges.
        controller.kill()
        promote(overrides, "2")
        assert serving_version(endpoint) == "1"  # the alias alone switches nothing
        controller = Controller(root, overrides)
        latency = wait_for_version(endpoint, "2")
        print(f"restart -> v2 serving: {latency:.1f}s")
    finally:
        controller.stop()

    events = [(e["event"], e["version"]) for e in AuditTrail.of(params).read()]
    assert ("deployed", "1") in events and ("deployed", "2") in events
    assert ("rollback", "1") in events and ("refused", "3") in events
    body = json.loads(cli(overrides, "status", "--json").stdout)
    assert body["deployed"]["version"] == "2" and body["in_sync"] is True


def test_sigterm_in_the_middle_of_a_release_stops_the_controller_and_leaves_nothing(
    setup, tmp_path
):
    """A supervisor (systemd, Kubernetes, `kill`) stops `maas watch` while it releases: it
    exits at once, removes the container it was starting, and records no failed deploy (a
    restarted controller must not back off from a version that never failed)."""
    root, overrides, params, client = setup
    runtime = container_runtime_or_skip()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    status_before = champion.tags.get("deploy_status")
    state_dir = tmp_path / "deploy"
    own = [
        *overrides,
        f"deploy.state_dir={state_dir}",
        "deploy.webhook_listen=null",
        f"deploy.address=127.0.0.1:{free_port()}",
    ]
    controller = Controller(root, own, name="watch-sigterm")
    target = LocalTarget(state_dir, own[-1].split("=", 1)[1], runtime)
    try:
        deadline = time.monotonic() + 120
        while "releasing (package, validate, start, switch)" not in controller.tail(20000):
            assert time.monotonic() < deadline, controller.tail()
            assert controller.process.poll() is None, controller.tail()
            time.sleep(0.2)
        signalled = time.monotonic()
        controller.process.send_signal(signal.SIGTERM)  # the controller only, not its group
        try:
            controller.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running 30 s after SIGTERM:\n{controller.tail()}"
            ) from None
        print(f"SIGTERM mid-release -> exited in {time.monotonic() - signalled:.1f}s")
        assert "releasing (package, validate, start, switch)" in controller.tail(20000)
        assert containers.list_containers(runtime, target.prefix(MODEL)) == []
        assert target.current(MODEL) is None  # nothing was switched to
        tags = client.get_model_version(MODEL, champion.version).tags
        assert tags.get("deploy_status") == status_before, tags.get("deploy_reason")
    finally:
        controller.stop()
        target.stop_all()
        # a failure here must not leave the shared champion backing off from deploys
        now = client.get_model_version(MODEL, champion.version).tags
        for key in ("deploy_status", "deploy_reason", "deploy_attempted_at"):
            if key in champion.tags:
                client.set_model_version_tag(MODEL, champion.version, key, champion.tags[key])
            elif key in now:
                client.delete_model_version_tag(MODEL, champion.version, key)


def test_a_dead_container_or_gateway_is_noticed_and_replaced(setup):
    """The state file says in sync, the world does not: the serving container is gone (an OOM
    kill, a reboot) or the gateway died. Each pass checks what really answers and converges."""
    root, overrides, params, client = setup
    endpoint = f"http://{params.deploy.address}"
    runtime = container_runtime_or_skip()
    target = LocalTarget(params.deploy.state_dir, params.deploy.address, runtime)
    controller = Controller(root, overrides)
    try:
        champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
        wait_for_version(endpoint, champion)
        before = target.current(MODEL)
        assert before is not None
        subprocess.run(
            [runtime, "rm", "--force", "--time", "0", before.container],
            check=True,
            capture_output=True,
        )
        latency = wait_for_version(endpoint, champion)
        print(f"container removed -> v{champion} serving again: {latency:.1f}s")
        assert target.current(MODEL).container != before.container
        pid = int((params.deploy.state_dir / "gateway.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        latency = wait_for_version(endpoint, champion)
        print(f"gateway killed -> v{champion} serving again: {latency:.1f}s")
        assert int((params.deploy.state_dir / "gateway.pid").read_text()) != pid
    finally:
        controller.stop()
    unhealthy = [e["reason"] for e in AuditTrail.of(params).read() if e["event"] == "unhealthy"]
    assert any("is not running" in reason for reason in unhealthy), unhealthy


def test_promotion_in_the_mlflow_ui_reaches_the_service_through_the_webhook(setup):
    """The UI's REST call moves the alias; only the webhook (no interval) can react in time."""
    from maas.tracking.webhooks import load_or_create_secret, sign

    root, overrides, params, client = setup
    endpoint = f"http://{params.deploy.address}"
    ui_url = f"http://{params.deploy.ui_address}"
    ui = Process(root, overrides, "ui")
    controller = Controller(root, overrides, interval="600")
    try:
        deadline = time.monotonic() + 180
        while True:  # the UI server answers once its webhook is registered
            assert time.monotonic() < deadline, (root / "ui.log").read_text()[-2000:]
            try:
                if httpx.get(f"{ui_url}/health", timeout=2).status_code == 200:
                    hooks = MlflowClient(ui_url, registry_uri=ui_url).list_webhooks()
                    if any(hook.name == "maas-controller" for hook in hooks):
                        break
            except Exception:  # not up yet
                pass
            time.sleep(1)
        current = client.get_model_version_by_alias(MODEL, "champion").version
        wait_for_version(endpoint, str(current))  # the controller's first pass
        other = "1" if str(current) == "2" else "2"

        started = time.monotonic()
        response = httpx.post(
            f"{ui_url}/api/2.0/mlflow/registered-models/alias",
            json={"name": MODEL, "alias": "champion", "version": other},
            timeout=10,
        )  # exactly the request the MLflow UI sends when a person sets the alias
        assert response.status_code == 200, response.text
        latency = wait_for_version(endpoint, other, timeout=300)  # may build its image
        print(
            f"UI promotion of v{other} -> serving via webhook: {latency:.1f}s "
            f"(total {time.monotonic() - started:.1f}s)"
        )
        moves = [e for e in AuditTrail.of(params).read() if e["event"] in ("promoted", "rollback")]
        assert moves[-1]["version"] == other  # the move is recorded, and not as the controller's
        assert moves[-1]["actor"] == f"a registry client of {params.registry.tracking_uri}"
        deadline = time.monotonic() + 30  # the replaced version is marked after the switch
        while client.get_model_version(MODEL, current).tags.get("deploy_status") == "deployed":
            assert time.monotonic() < deadline, client.get_model_version(MODEL, current).tags
            time.sleep(0.5)
        assert client.get_registered_model(MODEL).tags["serving_version"] == other

        hook = f"http://{params.deploy.webhook_listen}/webhook"
        data = {"name": MODEL, "alias": "champion", "version": "3"}
        body = json.dumps({"entity": "model_version_alias", "action": "created", "data": data})
        now = str(int(time.time()))

        def signed_with(secret: str, delivery: str) -> dict[str, str]:
            signature = sign(secret, delivery, now, body.encode())
            return {
                "X-MLflow-Delivery-Id": delivery,
                "X-MLflow-Timestamp": now,
                "X-MLflow-Signature": signature,
            }

        forged = httpx.post(hook, content=body, headers=signed_with("wrong-secret", "forged-1"))
        assert forged.status_code == 401 and "bad signature" in forged.text
        secret = load_or_create_secret(params.deploy.webhook_secret_file)
        signed = signed_with(secret, "real-1")
        logged = len(controller.log_path.read_text(errors="replace"))
        assert httpx.post(hook, content=body, headers=signed).status_code == 202
        replay = httpx.post(hook, content=body, headers=signed)
        assert replay.status_code == 401 and "replayed" in replay.text
        # the delivery's pass ran, and it kept the champion: a delivery only wakes
        wait_for_line(controller, "(asked by a delivery for v3)", after=logged)
        assert serving_version(endpoint) == other
    finally:
        controller.stop()
        ui.stop()


def test_two_controllers_racing_deploy_a_new_version_once(setup):
    """Two `maas watch` on one project: the lock lets one build and deploy; the other finds
    the service in sync. Then the kubernetes target renders the same image's manifests."""
    import yaml

    from maas.audit import AuditTrail
    from maas.release import containers

    root, overrides, params, client = setup
    endpoint = f"http://{params.deploy.address}"
    new = int(register_again(overrides, passed=True, promoted=False, why="test: a new version"))
    current = client.get_model_version_by_alias(MODEL, "champion").version
    no_webhook = [*overrides, "deploy.webhook_listen=null"]  # two receivers cannot share a port
    first = Controller(root, no_webhook, name="watch-a")
    second = Controller(root, no_webhook, name="watch-b")
    try:
        wait_for_version(endpoint, str(current))
        promote(overrides, str(new))
        latency = wait_for_version(endpoint, str(new))
        print(f"two controllers: promote v{new} -> serving {latency:.1f}s")
        deadline = time.monotonic() + 90  # both make further passes (the deployer once done)
        while not all(
            f"in_sync v{new}" in (root / f"{name}.log").read_text()
            for name in ("watch-a", "watch-b")
        ):
            assert time.monotonic() < deadline, "a controller made no pass after the deploy"
            time.sleep(1)
    finally:
        first.stop()
        second.stop()
    deployed = [
        e
        for e in AuditTrail.of(params).read()
        if e["event"] == "deployed" and e["version"] == str(new)
    ]
    assert len(deployed) == 1, deployed
    logs = [(root / f"{name}.log").read_text() for name in ("watch-a", "watch-b")]
    assert all(f"in_sync v{new}" in log for log in logs), [log[-1500:] for log in logs]
    assert sum(f"deployed v{new}" in log for log in logs) == 1
    runtime = container_runtime_or_skip()
    target = LocalTarget(params.deploy.state_dir, params.deploy.address, runtime)
    assert len(containers.list_containers(runtime, target.prefix(MODEL))) == 1
    mirrored = AuditTrail.of(params, client).read_mlflow(limit=50)
    assert any(e["event"] == "deployed" and e["version"] == str(new) for e in mirrored)
    assert any(e["event"] == "promoted" and e["actor"] != "gate" for e in mirrored)

    # The kubernetes target: the same validated image, as a Deployment + Service.
    image = client.get_model_version(MODEL, str(new)).tags["image"]
    k8s = [
        *overrides,
        "deploy.target=kubernetes",
        f"deploy.state_dir={root / 'k8s-state'}",
        f"deploy.kubernetes_dir={root / 'k8s'}",
    ]
    cli(k8s, "watch", "--once", "--task", "flight-delay")
    documents = list(yaml.safe_load_all((root / "k8s" / f"maas-{MODEL}.yaml").read_text()))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert documents[1]["kind"] == "Service"
    body = json.loads(cli(k8s, "status", "--json").stdout)
    assert body["deployed"]["target"] == "kubernetes" and body["deployed"]["version"] == str(new)


def test_a_failed_build_keeps_the_old_version_serving_and_a_new_promote_retries_at_once(setup):
    """The image of a new version cannot be built (its base image does not exist): the
    version is tagged failed with the reason, the current one keeps answering; once fixed,
    `maas promote` again deploys it at once (not after the 5-minute back-off)."""
    root, overrides, params, client = setup
    endpoint = f"http://{params.deploy.address}"
    new = register_again(overrides, passed=True, promoted=False, why="test: auto_promote off")
    current = str(client.get_model_version_by_alias(MODEL, "champion").version)
    # packaging ahead off: the new version must meet the broken base image at its promotion
    overrides = [*overrides, "packaging.prepare_newest=0"]
    controller = Controller(root, overrides, name="watch-good")  # the champion serves
    try:
        wait_for_version(endpoint, current)
    finally:
        controller.stop()
    broken = [*overrides, "packaging.base_image=localhost/maas-missing-base:none"]
    # without the session's Prefect API: its own temporary server, as `maas watch` on a
    # fresh machine (helpers.session_env)
    controller = Controller(root, broken, name="watch-broken", env=dict(os.environ))
    try:
        wait_for_line(controller, f"reconcile {MODEL}: in_sync v{current}")  # its first pass
        promote(overrides, new)
        deadline = time.monotonic() + 240
        while client.get_model_version(MODEL, new).tags.get("deploy_status") != "failed":
            assert time.monotonic() < deadline, (root / "watch-broken.log").read_text()[-3000:]
            assert serving_version(endpoint) == current  # the old version answers throughout
            time.sleep(1)
    finally:
        controller.stop()
    tags = client.get_model_version(MODEL, new).tags
    print(f"failed build recorded: {tags['deploy_reason'][:200]}")
    assert "maas-missing-base" in tags["deploy_reason"]
    assert serving_version(endpoint) == current
    assert ("failed", new) in [(e["event"], e["version"]) for e in AuditTrail.of(params).read()]

    controller = Controller(root, overrides, name="watch-fixed")
    try:
        # its first pass: the failed build is recent, so it backs off
        wait_for_line(controller, f"reconcile {MODEL}: waiting v{new}")
        assert serving_version(endpoint) == current
        promote(overrides, new)  # asked again: retried at once
        latency = wait_for_version(endpoint, new, timeout=180)
        print(f"promote again after a failed build -> v{new} serving: {latency:.1f}s")
    finally:
        controller.stop()
