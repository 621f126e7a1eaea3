"""Progressive delivery, as real processes: `maas watch` under deploy.rollout.strategy
progressive, the real registry, podman containers and the HAProxy gateway, a client sending
requests the whole time.

Short steps (shadow, 25%, 50%, 100%; 3 s and 20 requests each) keep the module small: two versions
registered (the trained model registered again, as test_promotion does) and packaged once, and
a third of worse quality (the trained network with its output layer negated: no training)
rolled back on quality by a shadow step, before any client reaches it.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from maas.audit import AuditTrail
from maas.cli import app
from maas.net import free_port
from maas.operate.rollout_state import RolloutStore
from maas.operate.targets import LocalTarget
from maas.release import containers
from tests.e2e.helpers import (
    PARAMS,
    TRAINED_MODEL,
    Controller,
    Load,
    container_runtime_or_skip,
    register_again,
    register_inverted,
    wait_for_version,
)
from tests.unit.operate.served_logs import records_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = TRAINED_MODEL
STEPS = [
    "deploy.rollout.strategy=progressive",
    "deploy.rollout.steps=[shadow, 25, 50, 100]",
    "deploy.rollout.min_seconds=3",
    "deploy.rollout.min_requests=20",
]


def cli(overrides, *args: str):
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = CliRunner().invoke(app, [*args, "-p", PARAMS, *sets])
    assert result.exit_code == 0, result.output
    return result


def wait_for_tag(client, version: str, key: str, accepted, timeout: float = 600) -> str:
    """Until the version's `key` tag satisfies `accepted` (packaging a new image included)."""
    deadline = time.monotonic() + timeout
    while True:
        value = client.get_model_version(MODEL, version).tags.get(key, "")
        if accepted(value):
            return value
        assert time.monotonic() < deadline, f"v{version} {key}={value!r}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def project(trained_project, tmp_path_factory):
    """The trained project with its own deploy state, address and audit trail (a controller
    of test_promotion may share the registry), and two more versions: good and bad."""
    from maas.config import load_params

    runtime = container_runtime_or_skip()
    root, overrides, _ = trained_project
    own = tmp_path_factory.mktemp("rollout")
    overrides = [
        *overrides,
        f"deploy.state_dir={own / 'deploy'}",
        f"deploy.audit_log={own / 'audit.jsonl'}",
        f"monitoring.log_dir={own / 'predictions'}",
        f"deploy.address=127.0.0.1:{free_port()}",
        "deploy.webhook_listen=null",
        *STEPS,
    ]
    good = register_again(overrides, passed=True, promoted=False, why="test: rollout good")
    bad = register_again(overrides, passed=True, promoted=False, why="test: rollout bad")
    worse = register_inverted(overrides, why="test: rollout worse quality")
    params = load_params(PARAMS, overrides)
    client = MlflowClient(params.registry.tracking_uri)
    target = LocalTarget(params.deploy.state_dir, params.deploy.address, runtime)
    yield root, overrides, params, client, (good, bad, worse), runtime
    target.stop_all()


def test_a_good_version_rolls_out_through_a_restart_and_a_bad_one_rolls_back(project) -> None:
    root, overrides, params, client, (good, bad, _), runtime = project
    endpoint = f"http://{params.deploy.address}"
    first = str(client.get_model_version_by_alias(MODEL, "champion").version)
    started = time.monotonic()
    controller = Controller(root, overrides, name="watch-rollout")
    try:
        wait_for_version(endpoint, first)  # nothing served: the first deploy is immediate

        # the good version: shadow (a replay of the champion's requests) -> canary 25% -> 50%
        # (the controller killed and restarted there) -> 100% -> the only serving version, no
        # failed request
        with Load(endpoint) as load:
            cli(overrides, "promote", good)
            wait_for_tag(client, good, "rollout_state", lambda v: v == "shadow")
            wait_for_tag(client, good, "rollout_state", lambda v: v.startswith("canary"))
            shown = json.loads(cli(overrides, "rollout", "status", "--json").stdout)
            assert shown["rollout"]["candidate"] == good and shown["rollout"]["previous"] == first
            catalog = httpx.get(f"{endpoint}/models").json()
            assert catalog[0]["state"].startswith("canary"), catalog
            wait_for_tag(client, good, "rollout_state", lambda v: v == "canary 50%", 120)
            controller.kill()  # mid-step: the gateway serves on, at the recorded weights
            controller = Controller(root, overrides, name="watch-rollout-2")
            wait_for_tag(client, good, "rollout_state", lambda v: v == "promoted", 180)
            wait_for_version(endpoint, good)
            seen = load.assert_served_only({first, good}, at_least=50)
        print(f"rollout v{good}: {seen}, {time.monotonic() - started:.0f}s since the start")
        assert client.get_model_version(MODEL, good).tags["deploy_status"] == "deployed"

        # the bad version: its service dies at its first step -> rolled back, champion back,
        # the good version serving throughout
        with Load(endpoint) as load:
            cli(overrides, "promote", bad)
            wait_for_tag(client, bad, "rollout_state", lambda v: v == "canary 25%")
            rollout = RolloutStore.at(params.deploy.state_dir).get(MODEL)
            assert rollout is not None and rollout.candidate == bad
            for name in rollout.containers:
                containers.remove_container(runtime, name)
            wait_for_tag(client, bad, "rollout_state", lambda v: v == "rolled_back", 120)
            # the tag is written before the candidate's containers go and the state is cleared
            store = RolloutStore.at(params.deploy.state_dir)
            deadline = time.monotonic() + 60
            while store.get(MODEL) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            seen = load.stop()
            assert store.get(MODEL) is None, "the rollback was never finished"
        failed = {k: n for k, n in seen.items() if k not in (good, bad)}
        # a request whose connection to the dead candidate failed is retried by the gateway;
        # the good version's own requests never fail
        assert seen.get(good, 0) > 20 and sum(failed.values()) <= 2, seen
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == good
        tags = client.get_model_version(MODEL, bad).tags
        assert "container is gone" in tags["rollout_reason"], tags
        assert {wait_for_version(endpoint, good) is not None for _ in range(3)} == {True}
        print(f"rollback v{bad}: {seen}; module so far {time.monotonic() - started:.0f}s")
    finally:
        controller.stop()
    events = [(e["event"], e["version"]) for e in AuditTrail.of(params).read()]
    assert ("rollout_started", good) in events and ("deployed", good) in events
    assert ("rollout_rolled_back", bad) in events
    body = json.loads(cli(overrides, "status", "--json").stdout)
    assert body["deployed"]["version"] == good and body["rollout"] is None


def test_a_version_of_worse_quality_is_rolled_back_at_shadow_before_any_client_reaches_it(
    project,
) -> None:
    """Issue 30: a version that answers fast and without errors but ranks flights backwards.
    December's flights, whose labels are in the raw folder, are served by the champion; the
    candidate replays them (the shadow step, before any live share), is judged worse on
    realized quality and rolled back: champion back, no client answered by it."""
    import pandas as pd

    root, overrides, params, client, (_, _, worse), _ = project
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    endpoint = f"http://{params.deploy.address}"
    shadowed = [*overrides, "deploy.rollout.steps=[shadow, 25, 100]"]
    labeled = pd.read_parquet(params.data.raw_dir / "2013-12.parquet").sample(500, random_state=3)
    controller = Controller(root, shadowed, name="watch-rollout-shadow")
    try:
        wait_for_version(endpoint, champion)
        # December's flights, in requests of 10, the whole time: the champion's answers are
        # what the shadow step replays (the newest 2,000 requests), their labels have arrived
        with Load(endpoint, records_of(labeled, params)) as load:
            cli(shadowed, "promote", worse)
            wait_for_tag(client, worse, "rollout_state", lambda v: v == "rolled_back", 300)
            seen = load.stop()
    finally:
        controller.stop()
    assert set(seen) == {champion} and seen[champion] > 0, seen  # none failed, none reached it
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == champion
    reason = client.get_model_version(MODEL, worse).tags["rollout_reason"]
    assert reason.startswith("shadow failed") and "shadow_quality" in reason, reason
    rolled = next(
        e
        for e in AuditTrail.of(params).read()
        if e["event"] == "rollout_rolled_back" and e["version"] == worse
    )
    quality = rolled["checks"]["shadow_quality"]  # the numbers, in the audit event
    assert quality["drop_low"] > 0.02 and quality["champion_rows"] >= 200, quality
    print(f"rolled back v{worse} at shadow: {reason}; the clients: {seen}")
    steps = [e for e in AuditTrail.of(params).read() if e["version"] == worse]
    assert [e["event"] for e in steps if e["event"].startswith("rollout_")] == [
        "rollout_started",
        "rollout_rolled_back",
    ], steps
