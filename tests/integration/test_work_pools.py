"""Issue 32 item 3: the pipeline on a Prefect work pool, as real processes.

A `prefect server start` (SQLite in a temporary PREFECT_HOME, on 127.0.0.1), `maas schedule
--pool` for two tasks, and two `maas worker --pool` processes (one run at a time each):

- the two tasks' reconcile runs, started together, run at the same time on different workers
  (the reconcile flow: seconds, so the test measures the pool and not a training run; two
  trainings at once on this 2-core machine would take minutes);
- a REST client that changes a deployment's parameters gets its run refused by the worker;
- a worker whose host dies (the worker and its flow run SIGKILLed) mid-way through a real
  training run (tiny synthetic months, the MLP) leaves the run CRASHED (Prefect's heartbeats
  and the automation `maas schedule --pool` makes) and nothing registered; the next run, on
  the other worker, trains and registers v1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from maas.net import free_port
from tests.e2e.helpers import FAST, PARAMS, Process
from tests.helpers import make_flights

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POOL = "maas-test-pool"
TASKS = ("flight-delay", "hotel-rates")
CRASHED_AFTER_S = 45  # the shortest `maas schedule --pool` accepts (heartbeats every 30 s)
SMALL = [  # bands for 400 synthetic rows a month
    "validation.row_count.min=100",
    "validation.row_count.max=100000",
    "validation.label_rate.min=0.05",
    "validation.label_rate.max=0.95",
    "features.min_frequency=1",
    "train.batch_size=64",
]


def wait_until(check: Callable[[], Any], timeout: float, what: str, processes=()) -> Any:
    """`check()`'s first true value; fails naming `what`, with the processes' log tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            code = process.process.poll()
            assert code is None, f"{process.log_path.name} exited ({code}):\n{process.tail()}"
        with contextlib.suppress(httpx.HTTPError):
            value = check()
            if value:
                return value
        time.sleep(1)
    tails = "\n".join(f"--- {p.log_path.name}\n{p.tail()}" for p in processes)
    raise AssertionError(f"{what}: not within {timeout:.0f}s\n{tails}")


class Api:
    """The test's own REST client of the Prefect API (as any API writer would be)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call, again while the server answers 503 (its SQLite database busy: this
        machine's two cores are shared with the workers' flow runs)."""
        deadline = time.monotonic() + 60
        while True:
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 503 or time.monotonic() > deadline:
                response.raise_for_status()
                return response
            time.sleep(1)

    def deployment(self, flow: str, name: str) -> dict:
        return dict(self.call("GET", f"/deployments/name/{flow}/{name}").json())

    def start(self, deployment: dict) -> str:
        created = self.call("POST", f"/deployments/{deployment['id']}/create_flow_run", json={})
        return str(created.json()["id"])

    def run(self, run_id: str) -> dict:
        return dict(self.call("GET", f"/flow_runs/{run_id}").json())

    def ended(self, run_id: str) -> dict | None:
        run = self.run(run_id)
        return run if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED"} else None


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> Iterator[tuple[str, dict[str, str], Path]]:
    """A Prefect server of the module's own (SQLite under a temporary PREFECT_HOME), the
    environment that reaches it, and the folder for logs."""
    root = tmp_path_factory.mktemp("pool")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    base |= {"PREFECT_HOME": str(root / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "0"}
    from maas.operate.prefect_server import prefect_executable

    command = [prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = Process(root, [], "prefect-server", env=base, command=command)
    try:
        wait_until(
            lambda: httpx.get(f"{api}/health").status_code == 200, 180, "the server", [server]
        )
        env = base | {"PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        yield api, env, root
    finally:
        server.stop()


def project_overrides(root: Path, *, fast: bool) -> list[str]:
    """Outputs under `root`, valid for both tasks; `fast`: flight-delay's tiny training."""
    paths = [
        f"registry.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"registry.artifact_root={root / 'mlartifacts'}",
        f"deploy.state_dir={root / 'deploy'}",
        f"deploy.audit_log={root / 'audit.jsonl'}",
        "schedule.reconcile_interval_s=86400",  # only the test's own runs, no scheduled ones
    ]
    if not fast:
        return paths
    raw = root / "raw"
    raw.mkdir(exist_ok=True)
    for seed, month in enumerate((10, 11, 12)):
        make_flights(400, month=month, seed=seed).to_parquet(raw / f"2013-{month:02d}.parquet")
    return [
        *paths,
        *FAST,
        *SMALL,
        f"data.raw_dir={raw}",
        f"data.processed_dir={root / 'processed'}",
        f"validation.reports_dir={root / 'reports' / 'validation'}",
        f"train.models_dir={root / 'models'}",
        f"train.checkpoint_dir={root / 'checkpoints'}",
        f"evaluate.metrics_path={root / 'reports' / 'metrics.json'}",
        f"evaluate.plots_dir={root / 'reports' / 'plots'}",
        f"promotion.verdict_key_file={root / 'gate.key'}",
    ]


def maas(env: dict[str, str], overrides: list[str], *args: str, code: int = 0) -> str:
    sets = [arg for item in overrides for arg in ("--set", item)]
    done = subprocess.run(
        [sys.executable, "-m", "maas.cli", *args, "-p", PARAMS, *sets],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


def start_workers(root: Path, env: dict[str, str], overrides: list[str], *extra: str):
    return [
        Process(
            root, overrides, "worker", "--pool", POOL, "--name", name, *extra, env=env, name=name
        )
        for name in ("worker-a", "worker-b")
    ]


def worker_of(run: dict) -> str:
    return str(run["labels"].get("prefect.worker.name"))


def interval(api: Api, run: dict) -> tuple[datetime, datetime]:
    """From the worker taking `run` (PENDING) to its end."""
    history = api.call("GET", "/flow_run_states/", params={"flow_run_id": run["id"]}).json()
    pending = min(s["timestamp"] for s in history if s["type"] == "PENDING")
    return datetime.fromisoformat(pending), datetime.fromisoformat(run["end_time"])


def test_two_tasks_run_at_once_on_two_workers_and_a_changed_run_is_refused(prefect_api) -> None:
    api_url, env, root = prefect_api
    started = time.monotonic()
    project = root / "two-tasks"
    project.mkdir()
    overrides = project_overrides(project, fast=False)
    for task in TASKS:
        out = maas(env, overrides, "schedule", "--pool", POOL, "--task", task)
        assert f"on work pool {POOL}" in out, out
    api = Api(api_url)
    pool = api.call("GET", f"/work_pools/{POOL}").json()
    assert pool["type"] == "process"
    controllers = [api.deployment("reconcile", f"controller-{task}") for task in TASKS]
    nightly = api.deployment("training", "nightly-flight-delay")
    # the same deployment as `maas schedule` serves: schedule, limit, tags; imported by module
    assert [s["schedule"].get("cron") for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert {"maas", "flight-delay", "maas-pool"} <= set(nightly["tags"])  # maas-pool: crashes
    assert nightly["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert nightly["entrypoint"] == "maas.flows.training.training"
    assert nightly["pull_steps"] == [] and nightly["work_pool_name"] == POOL
    missing = maas(env, overrides, "worker", "--pool", "no-such-pool", code=1)
    assert "--pool no-such-pool: no such work pool" in missing, missing
    workers = start_workers(project, env, overrides)
    try:
        wait_until(
            lambda: (
                len(api.call("POST", f"/work_pools/{POOL}/workers/filter", json={}).json()) >= 2
                and all("Ctrl-C" in w.tail() for w in workers)
            ),
            180,
            "two workers polling",
            workers,
        )
        runs = [api.start(deployment) for deployment in controllers]
        ended = [wait_until(lambda r=r: api.ended(r), 300, f"run {r}", workers) for r in runs]
        assert [run["state"]["type"] for run in ended] == ["COMPLETED"] * 2, ended
        assert {worker_of(run) for run in ended} == {"worker-a", "worker-b"}, ended
        # each worker busy with its run (from taking it to its end) at the same time
        (start_a, end_a), (start_b, end_b) = (interval(api, run) for run in ended)
        overlap = (min(end_a, end_b) - max(start_a, start_b)).total_seconds()
        assert overlap > 0, f"the runs did not overlap: {ended}"
        print(f"two tasks' reconcile runs overlapped {overlap:.1f}s on two workers")

        # A Prefect API writer re-aims the nightly training at a registry of their own.
        elsewhere = [*overrides, "registry.tracking_uri=http://127.0.0.1:9"]
        changed = api.call(
            "PATCH",
            f"/deployments/{nightly['id']}",
            json={"parameters": {**nightly["parameters"], "overrides": elsewhere}},
        )
        assert changed.status_code == 204, changed.text
        aimed = api.start(nightly)
        refused = wait_until(lambda: api.ended(aimed), 120, "the refusal", workers)
        message = str(refused["state"]["message"])
        assert refused["state"]["type"] == "CRASHED" and "refused" in message, refused
        assert "registry.tracking_uri=http://127.0.0.1:9" in message, message
        assert not (project / "models").exists()  # nothing ran
    finally:
        for worker in workers:
            worker.stop()
    print(f"two tasks on two workers: {time.monotonic() - started:.1f}s")


def test_a_worker_whose_host_dies_leaves_the_run_crashed_and_the_next_run_succeeds(
    prefect_api,
) -> None:
    api_url, env, root = prefect_api
    started = time.monotonic()
    project = root / "training"
    project.mkdir()
    overrides = project_overrides(project, fast=True)
    crash = ("--crashed-after", str(CRASHED_AFTER_S))
    maas(env, overrides, "schedule", "--pool", POOL, "--task", "flight-delay", *crash)
    api = Api(api_url)
    nightly = api.deployment("training", "nightly-flight-delay")
    # The registry exists before the runs, as a team's tracking server does: a run SIGKILLed
    # while it created a SQLite store's tables left a store that the next client failed to
    # open (MLflow 3.17: "table evaluation_datasets already exists").
    from mlflow import MlflowClient

    # both URIs: without registry_uri MLflow takes the process-wide one, which an earlier test
    # in this worker process set (mlflow.set_registry_uri) to its own store
    uri = f"sqlite:///{project / 'mlflow.db'}"
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert registry.search_registered_models() == []
    workers = start_workers(project, env, overrides, "--task", "flight-delay")
    try:
        wait_until(lambda: all("Ctrl-C" in w.tail() for w in workers), 180, "workers", workers)
        first = api.start(nightly)
        running = wait_until(
            lambda: (
                (run := api.run(first))["state"]["type"] == "RUNNING"
                and run["infrastructure_pid"]
                and run
            ),
            180,
            "the first run to start",
            workers,
        )
        time.sleep(5)  # inside the flow: ingesting, validating
        victim = next(w for w in workers if w.log_path.stem == worker_of(running))
        pid = int(str(running["infrastructure_pid"]).rsplit(":", 1)[-1])
        for group in (os.getpgid(pid), victim.process.pid):  # the host dies: no clean-up at all
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        victim.process.wait(timeout=30)
        killed = time.monotonic()
        survivor = [w for w in workers if w is not victim]
        crashed = wait_until(
            lambda: api.ended(first), CRASHED_AFTER_S + 120, "the crash detection", survivor
        )
        print(f"CRASHED {time.monotonic() - killed:.1f}s after the kill")
        assert crashed["state"]["type"] == "CRASHED", crashed
        assert "no heartbeat" in str(crashed["state"]["message"]), crashed
        assert registry.search_model_versions("name='flight-delay'") == []  # none half-made

        second = api.start(nightly)
        done = wait_until(lambda: api.ended(second), 420, "the next run", survivor)
        assert done["state"]["type"] == "COMPLETED", done
        assert worker_of(done) == survivor[0].log_path.stem
        versions = registry.search_model_versions("name='flight-delay'")
        assert [str(v.version) for v in versions] == ["1"], versions
        took = (datetime.fromisoformat(done["end_time"]) - interval(api, done)[0]).total_seconds()
        print(f"next run {took:.1f}s (heartbeats kept it alive past {CRASHED_AFTER_S}s)")
    finally:
        for worker in workers:
            worker.stop()
    print(f"host death and the next run: {time.monotonic() - started:.1f}s")
