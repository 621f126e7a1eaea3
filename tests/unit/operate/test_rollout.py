"""Progressive rollouts: the real HAProxy gateway, a real SQLite registry and audit trail, and
versions that are small real HTTP servers (well, with 500s, or slow) with real Prometheus
histograms; the controller's steps driven pass by pass under two keep-alive clients."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from maas.audit import AuditTrail
from maas.config import load_params
from maas.net import free_port, wait_until
from maas.operate.deployment import Deployment, read_deployment, write_state
from maas.operate.gateway import Gateway
from maas.operate.records import record_deployment
from maas.operate.rollout import Rollouts, describe
from maas.operate.rollout_finish import Finisher
from maas.operate.rollout_state import RolloutStore
from maas.operate.rollout_types import Check
from tests.helpers import ROOT
from tests.unit.operate.gateway_backends import needs_haproxy
from tests.unit.operate.rollout_backends import ServerFleet
from tests.unit.operate.test_controller import PASSED, champion_by_hand
from tests.unit.operate.test_records import add_version


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    needs_haproxy()


class World:
    """v1 serving behind the gateway, v2 registered; `rollouts()` is what a (re)started
    controller builds."""

    def __init__(
        self, tmp_path: Path, registry: Path, behaviour: dict[str, dict[str, float]], *steps: str
    ):
        shutil.copy(registry, tmp_path / "mlflow.db")  # migrated once: seconds saved per test
        self.params = load_params(
            ROOT / "params.yaml",
            [
                f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"registry.artifact_root={tmp_path / 'artifacts'}",
                f"deploy.state_dir={tmp_path / 'deploy'}",
                f"deploy.audit_log={tmp_path / 'a.jsonl'}",
                f"promotion.verdict_key_file={tmp_path / 'gate.key'}",
                "deploy.rollout.strategy=progressive",
                "deploy.rollout.min_seconds=0.3",
                "deploy.rollout.min_requests=40",
                # the versions are identical servers whose p99s differ by more than the
                # default 1.5x on a loaded machine; a slow version (0.5 s) is far beyond 3x
                "deploy.rollout.max_p99_ratio=3",
                *steps,
            ],
        )
        uri = self.params.registry.tracking_uri
        self.client = MlflowClient(uri, uri)
        self.model = self.params.registry.model_name
        champion_by_hand(self.client, self.params, tmp_path, PASSED)
        assert add_version(self.client, self.params, tmp_path) == "2"
        self.fleet = ServerFleet(behaviour)
        self.gateway = Gateway(self.params.deploy.state_dir, "127.0.0.1", free_port())
        self.url = f"http://127.0.0.1:{self.gateway.port}/models/{self.model}/predict"
        self.alerts: list[dict] = []
        self.gateway.ensure()
        v1 = self.fleet.start("1")
        self.gateway.switch(self.model, v1.ports, "1")
        self.serving = Deployment(
            model=self.model,
            version="1",
            image=v1.image,
            container=v1.containers[0],
            port=v1.ports[0],
            endpoint=self.url,
            deployed_at="2026-12-07T10:00:00Z",
            image_id=v1.image_id,
            containers=v1.containers,
            ports=v1.ports,
        )
        write_state(self.params.deploy.state_dir / "local.json", self.serving)
        record_deployment(self.client, self.model, "local", self.serving)

    def rollouts(self) -> Rollouts:
        trail = AuditTrail.of(self.params, self.client)
        store = RolloutStore.at(self.params.deploy.state_dir)
        finisher = Finisher(
            self.model,
            self.client,
            trail,
            self.gateway,
            self.fleet,
            store,
            self.params.deploy.state_dir / "local.json",
            self.url,
            alert=lambda body: self.alerts.append(body),
            drain_s=0.1,
        )
        return Rollouts(
            self.model,
            self.params.deploy.rollout,
            store,
            self.gateway,
            self.fleet,
            self.client,
            finisher,
        )

    def tags(self, version: str) -> dict[str, str]:
        return self.client.get_model_version(self.model, version).tags

    def events(self) -> list[dict]:
        return AuditTrail.of(self.params).read()

    def close(self) -> None:
        self.gateway.stop()
        self.fleet.stop_all()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """An empty SQLite registry, its schema made once for the module."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_registered_models()
    return path


@pytest.fixture
def make_world(tmp_path: Path, registry: Path):
    made: list[World] = []

    def make(behaviour: dict[str, dict[str, float]] | None = None, *steps: str) -> World:
        made.append(World(tmp_path, registry, behaviour or {}, *steps))
        return made[-1]

    yield make
    for world in made:
        world.close()


class Clients:
    """Two keep-alive clients posting until stopped: (status, body) or the error counted."""

    def __init__(self, url: str) -> None:
        self.url, self.seen = url, Counter[str]()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(2)]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                try:
                    response = http.post(self.url, json={})
                    self.seen[f"{response.status_code} {response.text}"] += 1
                except httpx.HTTPError as error:
                    self.seen[type(error).__name__] += 1

    def end(self) -> Counter[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        return self.seen


def answers(url: str, requests: int) -> Counter[str]:
    with httpx.Client(timeout=10) as http:  # one connection: a new client each costs ~0.1 s
        return Counter(http.post(url, json={}).text for _ in range(requests))


def drive(rollouts: Rollouts, timeout: float = 60, passes: int | None = None) -> list[str]:
    """Passes as the controller makes them, until the rollout ends (or `passes` were made):
    the labels they reported."""
    labels: list[str] = []
    deadline = time.monotonic() + timeout
    while (rollout := rollouts.current()) is not None and passes != 0:
        assert time.monotonic() < deadline, f"still rolling out: {describe(rollout)}"
        progress = rollouts.advance(rollout)
        if not labels or labels[-1] != progress.label:
            labels.append(progress.label)
        passes = None if passes is None else passes - 1
        time.sleep(0.05)
    return labels


def test_a_good_version_goes_canary_to_100_with_no_failed_request(make_world) -> None:
    # two identical servers on a shared 2-core machine: their tails differ by more than the
    # default 1.5x at times (the slow version's test keeps it: 0.5 s is far beyond either)
    world = make_world(None, "deploy.rollout.steps=[10, 50, 100]", "deploy.rollout.max_p99_ratio=3")
    rollouts = world.rollouts()
    clients = Clients(world.url)
    try:
        world.client.set_registered_model_alias(world.model, "champion", "2")
        started = rollouts.begin("2", world.serving)
        assert started.label == "canary 10%" and world.tags("2")["rollout_state"] == "canary 10%"
        assert describe(rollouts.current())["weights"] == {"v2": 10, "v1": 90}
        labels = drive(rollouts)
    finally:
        seen = clients.end()
    assert labels[-3:] == ["canary 50%", "canary 100%", "promoted"], labels
    assert set(seen) == {"200 v1", "200 v2"}, seen  # no failed request
    route = world.gateway.table().routes[world.model]
    assert (route.version, route.canary) == ("2", None)
    assert read_deployment(world.params.deploy.state_dir, "local", world.model).version == "2"
    assert world.tags("2")["rollout_state"] == "promoted"
    assert world.tags("2")["deploy_status"] == "deployed"
    assert world.tags("1")["deploy_status"] == "replaced"
    assert not world.fleet.running(world.serving.containers)  # the old version removed
    events = [e["event"] for e in world.events()]
    assert events == ["rollout_started", "rollout_step", "rollout_step", "deployed"]
    steps = [e for e in world.events() if e["event"] == "rollout_step"]
    assert [step["passed"] for step in steps] == ["canary 10%", "canary 50%"]
    assert steps[0]["checks"]["errors"]["candidate_requests"] >= 40
    assert set(answers(world.url, 20)) == {"v2"}


@pytest.mark.parametrize(
    ("behaviour", "failed"),
    [({"status": 500}, "errors"), ({"delay_s": 0.5}, "latency")],
    ids=["errors", "slow"],
)
def test_a_bad_version_is_rolled_back_at_its_first_step(make_world, behaviour, failed) -> None:
    world = make_world({"2": behaviour}, "deploy.rollout.steps=[25, 100]")
    rollouts = world.rollouts()
    clients = Clients(world.url)
    try:
        world.client.set_registered_model_alias(world.model, "champion", "2")
        rollouts.begin("2", world.serving)
        labels = drive(rollouts)
    finally:
        seen = clients.end()
    assert labels[-1] == "rolled_back" and set(labels) <= {"canary 25%", "rolled_back"}, labels
    # v1 was never interrupted: every other answer is the candidate's own
    assert seen["200 v1"] > 0 and set(seen) <= {"200 v1", "500 v2", "200 v2"}, seen
    assert world.client.get_model_version_by_alias(world.model, "champion").version == 1
    tags = world.tags("2")
    assert tags["rollout_state"] == "rolled_back"
    assert tags["rollout_reason"].startswith(f"canary 25% failed: {failed}:"), tags
    event = world.events()[-1]
    assert event["event"] == "rollout_rolled_back" and event["still_serving"] == "1"
    if failed == "errors":
        assert event["checks"]["errors"]["candidate_errors"] > 0
        assert event["checks"]["errors"]["p_value"] < 0.05
    else:
        assert event["checks"]["latency"]["candidate_p99_ms"] > 400
    assert len(world.alerts) == 1 and "rolled back" in world.alerts[0]["text"]
    assert world.gateway.table().routes[world.model].canary is None
    assert set(answers(world.url, 20)) == {"v1"}
    assert world.fleet.running(world.serving.containers) and len(world.fleet.servers) == 1


def test_a_restarted_controller_and_gateway_resume_the_step(make_world) -> None:
    world = make_world(
        None,
        "deploy.rollout.steps=[25, 100]",
        "deploy.rollout.min_seconds=1",
        "deploy.rollout.max_p99_ratio=3",
    )
    world.client.set_registered_model_alias(world.model, "champion", "2")
    world.rollouts().begin("2", world.serving)
    assert drive(world.rollouts(), passes=2) == ["canary 25%"]
    os.kill(int(world.gateway.pid_file.read_text()), signal.SIGKILL)  # a reboot, say
    assert wait_until(lambda: not world.gateway.running(), 5, 0.05)
    restarted = world.rollouts()  # a new controller: only the files are left
    clients = Clients(world.url)
    try:
        time.sleep(0.2)
        drive(restarted, passes=1)  # starts the gateway again, at the recorded share
        split = answers(world.url, 200)
        assert 20 <= split["v2"] <= 80 and split["v1"] >= 120, split  # never both at 0
        labels = drive(restarted)
    finally:
        seen = clients.end()
    assert labels[-1] == "promoted", labels
    assert set(seen) <= {"200 v1", "200 v2", "ConnectError"}, seen
    assert read_deployment(world.params.deploy.state_dir, "local", world.model).version == "2"


def test_a_rollback_cut_short_is_finished_and_never_routes_the_candidate_again(
    make_world,
) -> None:
    world = make_world(None, "deploy.rollout.steps=[25, 100]")
    world.client.set_registered_model_alias(world.model, "champion", "2")
    rollouts = world.rollouts()
    rollouts.begin("2", world.serving)
    rollout = rollouts.current()
    rollout.phase, rollout.reason = "rolling_back", "killed half-way through"
    rollouts.store.put(rollout)  # written down, then the controller died
    assert drive(world.rollouts()) == ["rolled_back"]
    assert world.gateway.table().routes[world.model].canary is None
    assert world.client.get_model_version_by_alias(world.model, "champion").version == 1
    assert world.tags("2")["rollout_reason"] == "killed half-way through"


def test_a_paused_rollout_holds_its_step_until_resumed(make_world) -> None:
    # identical servers whose tails differ by more than 1.5x on a loaded machine (see above)
    world = make_world(
        None,
        "deploy.rollout.steps=[25, 100]",
        "deploy.rollout.min_requests=1",
        "deploy.rollout.max_p99_ratio=3",
    )
    rollouts = world.rollouts()
    rollouts.begin("2", world.serving)
    rollouts.set_paused(rollouts.current(), True, actor="a person")
    assert world.tags("2")["rollout_state"] == "paused"
    answers(world.url, 10)
    time.sleep(0.4)
    assert drive(rollouts, passes=3) == ["paused at canary 25%"]
    rollouts.set_paused(rollouts.current(), False, actor="a person")
    assert drive(rollouts, passes=1) == ["canary 100%"]  # judged again: the step passed


@pytest.mark.parametrize("disagreement", [True, False], ids=["agrees", "disagrees"])
def test_the_shadow_step_sends_no_client_to_the_candidate(make_world, disagreement) -> None:
    """The shadow step's replay (maas.operate.shadow, its own tests) stands here as its
    checks: the step waits for them, a label-bound check still waiting does not hold it, a
    failed one rolls back before any client reached the candidate."""
    world = make_world(None, "deploy.rollout.steps=[shadow, 50, 100]")
    replays: list[str] = []

    def replay(rollout, since: float) -> list[Check]:
        replays.append(rollout.candidate)
        return [
            Check("shadow_disagreement", disagreement, "mean |dp| 0.01"),
            Check("shadow_quality", None, "12 labeled rows < 200: waiting for labels"),
        ]

    rollouts = world.rollouts()
    rollouts.shadow = replay
    assert rollouts.begin("2", world.serving).label == "shadow"
    assert set(answers(world.url, 40)) == {"v1"}  # no client sees the candidate
    labels = drive(rollouts, passes=12 if disagreement else None)
    assert replays == ["2"]  # run once the step lasted min_seconds, not on every pass
    if disagreement:
        assert labels[-1] == "canary 50%", labels
        assert world.gateway.table().routes[world.model].canary.weight == 50
    else:
        assert labels[-1] == "rolled_back", labels
        assert world.tags("2")["rollout_reason"].startswith("shadow failed: shadow_disagreement")


def test_the_controller_turns_a_champion_move_into_a_rollout_shown_in_the_catalog(
    make_world,
) -> None:
    """The controller's pass (`Pass.converge`, as `reconcile_once` runs it) with the world's
    rollouts: the move starts a rollout, each pass reports its step, the catalog says it."""
    from maas.operate.catalog import Catalog
    from maas.operate.controller import Outcome, Pass
    from maas.operate.targets import LocalTarget

    world = make_world(None, "deploy.rollout.steps=[25, 100]", "deploy.rollout.min_requests=5")
    address = f"127.0.0.1:{world.gateway.port}"
    target = LocalTarget(world.params.deploy.state_dir, address, "podman")
    one = Pass(
        model=world.model,
        client=world.client,
        target=target,
        trail=AuditTrail.of(world.params, world.client),
        catalog=Catalog.of(world.params, target),
        key_file=world.params.promotion.verdict_key_file,
        outsider="a registry client",
        rollouts=world.rollouts(),
        progressive=True,
    )

    def release(version: str) -> Deployment:
        raise AssertionError(f"v{version}: a progressive move never switches at once")

    world.client.set_registered_model_alias(world.model, "champion", "2")
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + 60
    while not outcomes or outcomes[-1].action == "rolling_out":
        assert time.monotonic() < deadline, outcomes[-1]
        outcome = one.converge(release, frozenset())
        one.catalog.publish(outcome.label or outcome.action, outcome.version, outcome.detail)
        if outcome.label == "canary 25%":
            entry = target.catalog()[world.model]
            assert (entry["state"], entry["served_version"]) == ("canary 25%", "1")
        outcomes.append(outcome)
        answers(world.url, 10)
    assert outcomes[0].label == "canary 25%" and outcomes[0].version == "2"
    assert outcomes[-1].action == "deployed" and outcomes[-1].version == "2"
    assert target.current(world.model).version == "2"
    events = [e["event"] for e in world.events()]
    assert events[:2] == ["promoted", "rollout_started"]  # the move by a registry client


@pytest.mark.parametrize("shifted", [False, True], ids=["same", "shifted"])
def test_a_live_step_rolls_back_on_model_quality_once_its_health_passed(
    make_world, shifted
) -> None:
    """The live steps' quality checks (maas.operate.rollout_quality, its own tests) stand here
    as their checks: asked only once the step's health checks passed, never holding a step
    while labels are missing, and a failed one rolling back with its numbers in the reason."""
    world = make_world(None, "deploy.rollout.steps=[25, 100]", "deploy.rollout.min_requests=1")
    asked: list[str] = []

    def quality(rollout, since: float) -> list[Check]:
        asked.append(rollout.step_label)
        return [
            Check("prediction_shift", not shifted, "KS 0.31 (p 0.001)", {"statistic": 0.31}),
            Check("realized_quality", None, "0 labeled rows < 200: waiting for labels"),
        ]

    rollouts = world.rollouts()
    rollouts.quality = quality
    rollouts.begin("2", world.serving)
    answers(world.url, 10)
    labels = drive(rollouts, passes=None if shifted else 12)
    assert asked, "the quality checks were never asked"
    if shifted:
        assert labels[-1] == "rolled_back", labels
        reason = world.tags("2")["rollout_reason"]
        assert "prediction_shift: KS 0.31" in reason, reason
    else:
        assert "rolled_back" not in labels and labels[-1] in ("canary 100%", "promoted"), labels
