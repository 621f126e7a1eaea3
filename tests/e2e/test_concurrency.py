"""Eight pipeline runs registering at once, as separate processes, against the embedded SQLite
store and against PostgreSQL: distinct versions, no errors, exactly one champion.

Each process opens its own MLflow run and runs the real `register` stage (the step where
runs race: version numbers, aliases, tags) on the outputs of one real validate/train/
evaluate (eight whole trainings at once would take minutes on two cores and race nothing more).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from mlflow import MlflowClient

from tests.e2e.helpers import PARAMS
from tests.e2e.test_team import postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RUNS = 8
MODEL = "delay-concurrent"

REGISTER = textwrap.dedent(
    """
    import json, sys
    from maas.config import load_params
    from maas.pipeline.evaluation.result import Evaluation
    from maas.pipeline.register import register_model
    from maas.tracking.runs import start_pipeline_run

    params = load_params(sys.argv[1], sys.argv[2:])
    tracking = start_pipeline_run(params.registry, params.model_dump(mode="json"), "digest")
    metrics = Evaluation.from_json(json.loads(params.evaluate.metrics_path.read_text()))
    registered = register_model(
        data=params.data, models_dir=params.train.models_dir, metrics=metrics,
        registry=params.registry, tracking=tracking, params_digest=params.digest(),
        verdict_key_file=params.promotion.verdict_key_file,
    )
    tracking.finish("FINISHED")
    print("REGISTERED", registered.version, ",".join(registered.aliases))
    """
)


def register_at_once(overrides: list[str]) -> list[str]:
    command = [sys.executable, "-c", REGISTER, PARAMS, *overrides]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    processes = [subprocess.Popen(command, **pipes) for _ in range(RUNS)]
    versions = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        versions += [line.split()[1] for line in out.splitlines() if line.startswith("REGISTERED")]
    return versions


def check_registry(uri: str, versions: list[str]) -> None:
    assert sorted(versions, key=int) == [str(n) for n in range(1, RUNS + 1)]  # distinct
    client = MlflowClient(uri, registry_uri=uri)
    registered = client.search_model_versions(f"name='{MODEL}'")
    assert len(registered) == RUNS and all(v.status == "READY" for v in registered)
    # (search results carry no aliases: read each version)
    aliases = [client.get_model_version(MODEL, v.version).aliases for v in registered]
    assert sum("champion" in names for names in aliases) == 1  # exactly one
    for version in registered:  # every version carries its whole lineage
        assert {"train_partitions", "test_partitions", "gate_passed"} <= set(version.tags)


@pytest.fixture(scope="module")
def evaluated(trained_project):
    """The trained project's validated data, model and metrics; a registry of our own."""
    root, overrides, _ = trained_project
    return root, [o for o in overrides if not o.startswith("registry.")]


def test_eight_runs_register_at_once_on_sqlite(evaluated, tmp_path):
    root, overrides = evaluated
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = [
        *overrides,
        f"registry.tracking_uri={uri}",
        f"registry.model_name={MODEL}",
        f"registry.artifact_root={tmp_path / 'artifacts'}",
    ]
    check_registry(uri, register_at_once(sets))


def test_eight_runs_register_at_once_on_postgresql(evaluated, tmp_path):
    root, overrides = evaluated
    with postgres_database("maas_concurrent") as database:
        uri = f"postgresql://postgres@127.0.0.1:5432/{database}"
        sets = [
            *overrides,
            f"registry.tracking_uri={uri}",
            f"registry.model_name={MODEL}",
            f"registry.artifact_root={tmp_path / 'artifacts'}",
        ]
        # the first connection creates the schema; racing eight schema creations is not
        # what this test is about
        MlflowClient(uri).search_experiments()
        check_registry(uri, register_at_once(sets))


DIES_BEFORE_REGISTER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from maas.cli.common import setup_environment
    from maas.config import load_params
    from maas.errors import RegistryError
    from maas.pipeline.evaluation.result import Evaluation
    from maas.pipeline.register import register_model
    from maas.tracking.runs import start_pipeline_run

    setup_environment()  # what `maas run` sets: MLflow's HTTP retries capped
    params = load_params(sys.argv[2], sys.argv[3:])
    tracking = start_pipeline_run(params.registry, params.model_dump(mode="json"), "digest")
    os.killpg(int(sys.argv[1]), signal.SIGKILL)  # the tracking server crashes mid-run
    started = time.monotonic()
    metrics = Evaluation.from_json(json.loads(params.evaluate.metrics_path.read_text()))
    try:
        register_model(
            data=params.data, models_dir=params.train.models_dir, metrics=metrics,
            registry=params.registry, tracking=tracking, params_digest=params.digest(),
            verdict_key_file=params.promotion.verdict_key_file,
        )
    except RegistryError as error:
        print(f"FAILED AFTER {time.monotonic() - started:.1f}s: {error}")
    """
)


def test_tracking_server_dying_before_registration_leaves_nothing_half_written(evaluated, tmp_path):
    """`mlflow server` is SIGKILLed between the run's start and its registration: the
    register step retries with backoff, then fails naming the store; after a restart the
    registry holds no version."""
    import os
    import time

    import httpx

    from maas.net import free_port

    root, overrides = evaluated
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{tmp_path / 'server.db'}"

    def server() -> subprocess.Popen:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                store,
                "--artifacts-destination",
                str(tmp_path / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.5)
        raise AssertionError("mlflow server did not start")

    process = server()
    sets = [*overrides, f"registry.tracking_uri={url}", f"registry.model_name={MODEL}-crash"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    done = subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_REGISTER, str(process.pid), PARAMS, *sets],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    process.wait(timeout=30)
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:])
    assert "FAILED AFTER" in done.stdout and "is not reachable" in done.stdout, done.stderr[-3000:]
    took = float(done.stdout.split("FAILED AFTER ")[1].split("s:")[0])
    assert took < 120  # a clear failure in bounded time, not MLflow's minutes of retries
    process = server()  # back up: nothing was registered
    try:
        client = MlflowClient(url, registry_uri=url)
        assert client.search_model_versions(f"name='{MODEL}-crash'") == []
    finally:
        os.killpg(process.pid, 9)
        process.wait(timeout=30)
