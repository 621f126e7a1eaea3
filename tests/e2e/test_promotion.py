"""The promotion controller, as real processes: champion moves → that version serves.

`maas watch` runs as its own process against the real registry and podman; requests go to
the stable address the whole time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from maas.cli import app
from maas.controller import read_audit
from maas.deploy import LocalTarget
from maas.packaging import free_port
from tests.e2e.conftest import PARAMS, TRAINED_MODEL, container_runtime_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = TRAINED_MODEL
FLIGHT = {"month": 12, "day": 3, "sched_dep_time": 900, "sched_arr_time": 1200,
          "carrier": "AA", "origin": "JFK", "dest": "LAX", "distance": 2475}  # fmt: skip


@pytest.fixture(scope="module")
def setup(trained_project):
    """v1 (champion), v2 (passes the gate, not promoted), v3 (fails the gate)."""
    from flows.training import training

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
    training(params_file=PARAMS, overrides=overrides)
    training(params_file=PARAMS, overrides=[*overrides, "promotion.min_roc_auc=0.99"])
    params = load_params(PARAMS, overrides)
    client = MlflowClient(params.registry.tracking_uri)
    assert client.get_model_version(MODEL, "3").tags["gate_passed"] == "false"
    target = LocalTarget(params.deploy.state_dir, params.deploy.address, runtime)
    yield root, overrides, params, client
    target.stop()


class Process:
    """A `maas` command in its own process (`maas watch`, `maas ui`)."""

    def __init__(self, root, overrides, *args: str) -> None:
        sets = [arg for item in overrides for arg in ("--set", item)]
        self.log = (root / f"{args[0]}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "maas.cli", *args, "-p", PARAMS, *sets],
            stdout=self.log, stderr=self.log, cwd=os.getcwd(), start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL to the process and its children (its temporary Prefect server): a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()


def Controller(root, overrides, interval: str = "1") -> Process:
    return Process(root, overrides, "watch", "--interval", interval)


def serving_version(endpoint: str) -> str | None:
    try:
        response = httpx.post(f"{endpoint}/predict", json={"flights": [FLIGHT]}, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json().get("model_version") if response.status_code == 200 else None


def wait_for_version(endpoint: str, version: str, timeout: float = 240) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if serving_version(endpoint) == version:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"v{version} did not serve at {endpoint} within {timeout}s")


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

        # Promote v2 while a client keeps sending requests to the stable address.
        outcomes: Counter[str] = Counter()
        stop = threading.Event()

        def client_loop() -> None:
            with httpx.Client(timeout=5) as http:
                while not stop.is_set():
                    try:
                        response = http.post(f"{endpoint}/predict", json={"flights": [FLIGHT]})
                        key = response.json()["model_version"] if response.is_success else "fail"
                        outcomes[
                            key if response.is_success else f"http {response.status_code}"
                        ] += 1
                    except httpx.HTTPError as error:
                        outcomes[type(error).__name__] += 1

        thread = threading.Thread(target=client_loop)
        thread.start()
        promote(overrides, "2")
        latency = wait_for_version(endpoint, "2")
        time.sleep(3)  # past the old container's drain and removal
        stop.set()
        thread.join()
        print(f"promote v2 -> v2 serving: {latency:.1f}s; requests during the switch: {outcomes}")
        assert set(outcomes) <= {"1", "2"}, outcomes  # no failed request during the switch
        tags = client.get_model_version(MODEL, "2").tags
        assert tags["deploy_status"] == "deployed" and tags["endpoint"] == endpoint

        # Rollback: v1 serves again from its existing image.
        cli(overrides, "rollback")
        latency = wait_for_version(endpoint, "1")
        print(f"rollback -> v1 serving: {latency:.1f}s")
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
        time.sleep(2)
        assert serving_version(endpoint) == "1"  # nobody converged it yet; v1 still serves
        controller = Controller(root, overrides)
        latency = wait_for_version(endpoint, "2")
        print(f"restart -> v2 serving: {latency:.1f}s")
    finally:
        controller.stop()

    events = [(e["event"], e["version"]) for e in read_audit(params)]
    assert ("deployed", "1") in events and ("deployed", "2") in events
    assert ("rollback", "1") in events and ("refused", "3") in events
    body = json.loads(cli(overrides, "status", "--json").stdout)
    assert body["deployed"]["version"] == "2" and body["in_sync"] is True


def test_promotion_in_the_mlflow_ui_reaches_the_service_through_the_webhook(setup):
    """The UI's REST call moves the alias; only the webhook (no interval) can react in time."""
    from maas.webhooks import load_or_create_secret, sign

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
        latency = wait_for_version(endpoint, other, timeout=120)
        print(f"UI promotion of v{other} -> serving via webhook: {latency:.1f}s "
              f"(total {time.monotonic() - started:.1f}s)")  # fmt: skip

        hook = f"http://{params.deploy.webhook_listen}/webhook"
        data = {"name": MODEL, "alias": "champion", "version": "3"}
        body = json.dumps({"entity": "model_version_alias", "action": "created", "data": data})
        now = str(int(time.time()))

        def signed_with(secret: str, delivery: str) -> dict[str, str]:
            signature = sign(secret, delivery, now, body.encode())
            return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": now,
                    "X-MLflow-Signature": signature}  # fmt: skip

        forged = httpx.post(hook, content=body, headers=signed_with("wrong-secret", "forged-1"))
        assert forged.status_code == 401 and "bad signature" in forged.text
        secret = load_or_create_secret(params.deploy.webhook_secret_file)
        signed = signed_with(secret, "real-1")
        assert httpx.post(hook, content=body, headers=signed).status_code == 202
        replay = httpx.post(hook, content=body, headers=signed)
        assert replay.status_code == 401 and "replayed" in replay.text
        time.sleep(2)
        assert serving_version(endpoint) == other  # a delivery only wakes; champion decides
    finally:
        controller.stop()
        ui.stop()
