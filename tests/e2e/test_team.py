"""Team mode, as real processes: MLflow on PostgreSQL, a Prefect server, `maas schedule`.

A Prefect server (its database on PostgreSQL too) and `maas ui --backend-store-uri
postgresql://…` run as a team would run them; `maas schedule` serves the training and
reconcile deployments against them. A month arrives (`maas data add-month`), a run of the
training deployment picks it up and registers a version through the tracking server (rows in
PostgreSQL), the gate makes it champion, and the *scheduled* reconcile deploys it to the
stable address.

With authentication on, as docs/operations.md says to run a team (issue 27 item 4): `maas ui
--auth` (MLflow's basic-auth app; the owner is the admin and makes the `pipeline` and `viewer`
users), the Prefect server with an auth string. Anonymous clients get 401 from both, and a run
created through the Prefect API with the caller's own overrides is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from maas.cli import app
from maas.net import free_port
from maas.operate.targets import LocalTarget
from tests.e2e.helpers import (
    PARAMS,
    Process,
    container_runtime_or_skip,
    copy_months,
    overrides_for,
    wait_for_version,
)
from tests.helpers import missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "delay-team"
POSTGRES = "host=127.0.0.1 port=5432 user=postgres connect_timeout=5"
OWNER = ("owner", "owner-password-5521")  # the MLflow admin: whoever runs `maas ui --auth`
PIPELINE = ("pipeline", "pipeline-password-7730")  # `maas schedule`: trains and reconciles
VIEWER = ("viewer", "viewer-password-1184")  # another team member: reads
PREFECT_AUTH = ("team", "prefect-password-9921")


def mlflow_user(env: dict, user: tuple[str, str]) -> dict:
    """`env` with an MLflow user's credentials (by environment, as every client reads them)."""
    return {**env, "MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


@contextlib.contextmanager
def postgres_database(prefix: str):
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(f"{POSTGRES} dbname=postgres", autocommit=True)
    except psycopg.OperationalError as error:
        missing("postgres", f"no PostgreSQL at 127.0.0.1:5432 ({error})")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def wait_until(check, timeout: float, what: str, logs=()) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for process in logs:
            code = process.process.poll()
            assert code is None, f"{process.log_path.name} exited ({code}):\n{process.tail()}"
        with contextlib.suppress(httpx.HTTPError, MlflowException):  # not up yet
            if check():
                return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout:.0f}s\n" + "\n".join(p.tail() for p in logs))


def test_team_mode_pipeline_schedule_and_promotion(tmp_path: Path, real_months):
    runtime = container_runtime_or_skip()
    root = tmp_path
    raw = copy_months(real_months, root / "raw", ["2013-10", "2013-11"])
    ui_address, address, prefect_port = f"127.0.0.1:{free_port()}", free_port(), free_port()
    ui_url, api = f"http://{ui_address}", f"http://127.0.0.1:{prefect_port}/api"
    overrides = [line for line in overrides_for(root, raw) if not line.startswith("registry.")] + [
        f"registry.model_name={MODEL}",
        f"registry.experiment={MODEL}",
        f"deploy.state_dir={root / 'deploy'}",
        f"deploy.audit_log={root / 'audit.jsonl'}",
        f"deploy.address=127.0.0.1:{address}",
        f"deploy.webhook_listen=127.0.0.1:{free_port()}",
        f"deploy.ui_address={ui_address}",
        f"deploy.webhook_secret_file={root / 'webhook.secret'}",
        "schedule.reconcile_interval_s=5",
    ]
    endpoint = f"http://127.0.0.1:{address}"
    # Everyone on the team: the tracking server and the Prefect server by URL.
    team_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": ui_url,
        "PREFECT_API_URL": api,
        "PREFECT_API_AUTH_STRING": ":".join(PREFECT_AUTH),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    pf = httpx.Client(auth=PREFECT_AUTH, timeout=60)  # the test's own Prefect API calls
    team_env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    processes: list[Process] = []
    with postgres_database("maas_mlflow") as mlflow_db, postgres_database("maas_prefect") as pf_db:
        server_env = {
            **os.environ,
            "PREFECT_HOME": str(root / "prefect-home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pf_db}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_AUTH_STRING": ":".join(PREFECT_AUTH),
        }
        server_env.pop("PREFECT_API_URL", None)
        from maas.operate.prefect_server import prefect_executable

        prefect = Process(
            root,
            [],
            "prefect-server",
            env=server_env,
            command=[
                prefect_executable(),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
            ],
        )
        processes.append(prefect)
        store = f"postgresql://postgres@127.0.0.1:5432/{mlflow_db}"
        artifacts = str(root / "team-artifacts")
        ui = Process(
            root,
            overrides,
            "ui",
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            artifacts,
            "--auth",
            env=mlflow_user(team_env, OWNER),
        )
        processes.append(ui)
        try:
            wait_until(
                lambda: httpx.get(f"{api}/health").status_code == 200,
                180,
                "the Prefect server",
                processes,
            )
            wait_until(
                lambda: httpx.get(f"{ui_url}/health").status_code == 200,
                180,
                "the MLflow server on PostgreSQL",
                processes,
            )
            webhooks = f"{ui_url}/api/2.0/mlflow/webhooks"
            wait_until(
                lambda: any(
                    h["name"] == "maas-controller"
                    for h in httpx.get(webhooks, auth=OWNER, timeout=60).json().get("webhooks", [])
                ),
                60,
                "the webhook registration",
                processes,
            )
            # Authentication: anonymous clients are refused by both servers.
            search = f"{ui_url}/api/2.0/mlflow/registered-models/search"
            assert httpx.get(search, timeout=60).status_code == 401
            assert httpx.post(f"{api}/deployments/filter", json={}).status_code == 401
            for user in (PIPELINE, VIEWER):  # the owner (admin) makes the team's users
                made = httpx.post(
                    f"{ui_url}/api/2.0/mlflow/users/create",
                    json={"username": user[0], "password": user[1]},
                    auth=OWNER,
                    timeout=60,
                )
                assert made.status_code == 200, made.text
            schedule = Process(root, overrides, "schedule", env=mlflow_user(team_env, PIPELINE))
            processes.append(schedule)

            def deployment(flow: str, name: str) -> dict:
                response = pf.get(f"{api}/deployments/name/{flow}/{name}")
                response.raise_for_status()
                return response.json()

            wait_until(
                lambda: (
                    deployment("training", "nightly-flight-delay")
                    and deployment("reconcile", "controller-flight-delay")
                    and deployment("monitoring", "monitor-flight-delay")
                ),
                180,
                "the deployments",
                processes,
            )
            nightly = deployment("training", "nightly-flight-delay")
            assert [s["schedule"].get("cron") for s in nightly["schedules"]] == ["0 2 * * *"]
            reconcile = deployment("reconcile", "controller-flight-delay")
            assert [s["schedule"].get("interval") for s in reconcile["schedules"]] == [5.0]
            monitor = deployment("monitoring", "monitor-flight-delay")
            assert [s["schedule"].get("cron") for s in monitor["schedules"]] == ["30 3 * * *"]

            # A month arrives; the next run of the training deployment tests on it.
            sets = [arg for item in overrides for arg in ("--set", item)]
            added = CliRunner().invoke(
                app, ["data", "add-month", "--no-dvc-add", "-p", PARAMS, *sets]
            )
            assert added.exit_code == 0, added.output
            # Whoever reaches the Prefect API cannot re-aim a run with overrides of their own.
            aimed = [*overrides, "registry.tracking_uri=http://127.0.0.1:9"]
            attack = pf.post(
                f"{api}/deployments/{nightly['id']}/create_flow_run",
                json={"parameters": {"overrides": aimed}},
            )
            attack.raise_for_status()

            def attack_state() -> dict:
                return dict(pf.get(f"{api}/flow_runs/{attack.json()['id']}").json()["state"])

            wait_until(
                lambda: attack_state()["type"] == "FAILED", 120, "the refused run", processes
            )
            assert "not the caller's" in str(attack_state()["message"]), attack_state()

            started = time.monotonic()
            run = pf.post(f"{api}/deployments/{nightly['id']}/create_flow_run", json={})
            run.raise_for_status()

            def training_state() -> str:
                state = pf.get(f"{api}/flow_runs/{run.json()['id']}").json()["state"]["type"]
                assert state not in {"FAILED", "CRASHED", "CANCELLED"}, state
                return str(state)

            took = wait_until(
                lambda: training_state() == "COMPLETED", 600, "the training run", processes
            )
            print(f"team mode: training deployment run {took:.1f}s")
            viewer = mlflow_user({}, VIEWER)
            with pytest.MonkeyPatch.context() as patch:  # this test's client reads as `viewer`
                for name, value in viewer.items():
                    patch.setenv(name, value)
                client = MlflowClient(ui_url, registry_uri=ui_url)
                version = client.get_model_version_by_alias(MODEL, "champion")
            assert version.version == "1"
            assert list(json.loads(version.tags["test_partitions"])) == ["2013-12"]

            # The rows live in PostgreSQL, written through the tracking server.
            import psycopg

            with (
                psycopg.connect(f"{POSTGRES} dbname={mlflow_db}") as connection,
                connection.cursor() as cursor,
            ):
                cursor.execute("SELECT count(*) FROM model_versions WHERE name = %s", (MODEL,))
                assert cursor.fetchone()[0] == 1

            # The scheduled reconcile (no `maas watch` running) deploys the champion.
            latency = wait_for_version(endpoint, "1", timeout=300)
            print(
                f"team mode: champion v1 serving {latency:.1f}s after the training run; "
                f"{time.monotonic() - started:.1f}s from the run's start"
            )
            runs = pf.post(
                f"{api}/flow_runs/filter", json={"deployments": {"id": {"any_": [reconcile["id"]]}}}
            ).json()
            assert any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in runs)

            def status() -> dict:  # another team member's `maas status`, through the server
                done = subprocess.run(
                    [sys.executable, "-m", "maas.cli", "status", "--json", "-p", PARAMS, *sets],
                    env=mlflow_user(team_env, VIEWER),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                return dict(json.loads(done.stdout))

            def recorded(body: dict) -> bool:  # the pass records after the switch
                events = {(e["event"], e["actor"]) for e in body["audit"]}
                return ("promoted", "gate") in events and ("deployed", "controller") in events

            wait_until(lambda: recorded(status()), 120, "the deployment's audit event", processes)
            body = status()
            assert body["in_sync"] is True and body["deployed"]["version"] == "1"
        finally:
            for process in reversed(processes):
                process.stop()
            with contextlib.suppress(Exception):
                from maas.config import load_params

                params = load_params(PARAMS, overrides)
                LocalTarget(params.deploy.state_dir, params.deploy.address, runtime).stop_all()
