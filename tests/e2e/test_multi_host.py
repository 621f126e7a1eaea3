"""Issue 32 item 4: the multi-host rehearsal, every service on a host of its own.

Hosts are network namespaces the test makes (tests/e2e/hosts.py), on one bridge, 10.78.0.0/24;
each sees its own folder at one common path, so a file written on one host is not there on
another. What runs where, and how the hosts reach each other (by address only):

| host | runs | reaches |
|---|---|---|
| db | a private PostgreSQL cluster (initdb here), listening on its address only | - |
| registry | `maas ui --auth --backend-store-uri postgresql://…@db`, artifacts served | db |
| orchestrator | `prefect server start`, an auth string (SQLite on its own disk) | - |
| worker1, worker2 | `maas worker --pool` (MLflow user `pipeline`) | orchestrator, registry |
| edge (10.78.0.1) | `maas watch`, HAProxy, the serving containers | registry, orchestrator |
| client | moves `champion` (MlflowClient, the admin); predicts | registry, edge |

A worker trains a version on its own copy of the data and registers it through the MLflow
server, whose artifact store (`mlflow-artifacts:/`, a folder on registry) is where every
other host gets the model from; a second run, on the other worker, makes a second version.
The client makes v1 champion with the MLflow API; the webhook crosses from registry to edge,
the controller there deploys it behind the gateway; while the client sends, it makes v2
champion: 0 failed requests through the switch.

What does not cross hosts today, found here (docs/scaling.md, "What must cross hosts"):
- the gate key and the webhook secret: with a file per host, training would sign with a key
  of its own and the controller find none (or another): every version refused, and every
  webhook delivery refused (a 401, the controller left to its interval). They cross as
  `$MAAS_GATE_KEY` (training and the controller) and `$MAAS_WEBHOOK_SECRET` (the MLflow
  server and the controller), as a secret manager would set them;
- the CLI's log file, `.maas/logs/maas.log` under the working folder (a worker's runs work in
  the checkout's): these hosts share one checkout, so each gets `$MAAS_LOG_FILE` of its own;
- fixed here: the controller packaged ahead a version seen mid-registration (from another
  host), found it unsigned and never tried it again; it now waits for the signature;
- the serving replicas: the gateway routes to 127.0.0.1 (operate/gateway_routes.py), so they
  run on the gateway's host;
- images: the controller builds them on its host, and the build installs the serving lock's
  packages from the package index. A namespace here has no route out, so edge is the root
  namespace's address on the bridge (10.78.0.1): the test process, acting from edge too,
  starts the training runs through the Prefect API. Its other hosts have no 127.0.0.1
  shortcut to anything: their loopback is their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from maas.net import free_port
from tests.e2e.helpers import (
    PARAMS,
    Process,
    container_runtime_or_skip,
    overrides_for,
    wait_for_line,
)
from tests.e2e.hosts import NETWORK, Hosts

# team mode's users: the MLflow admin (the client moves `champion` as it), the pipeline's user
# (the workers and the controller), the Prefect server's auth string
from tests.e2e.test_team import OWNER, PIPELINE, PREFECT_AUTH
from tests.helpers import make_flights, missing
from tests.integration.test_work_pools import SMALL, Api, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "delay-hosts"
POOL = "maas-hosts"
HOSTS = ("db", "registry", "orchestrator", "worker1", "worker2", "client")
NIGHTLY = ("training", "nightly-flight-delay")


def mlflow_user(user: tuple[str, str]) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


@pytest.fixture
def hosts(tmp_path):
    made = Hosts(tmp_path)
    try:
        made.start()
        for host in HOSTS:
            made.add(host)
        yield made
    finally:
        made.close()


def maas(*args: str, overrides: list[str]) -> list[str]:
    sets = [arg for item in overrides for arg in ("--set", item)]
    return [sys.executable, "-m", "maas.cli", *args, "-p", PARAMS, *sets]


def no_loopback(processes: dict[str, tuple[list[str], dict[str, str]]]) -> None:
    """No host's command line or environment names a loopback address: every peer by address."""
    for host, (command, env) in processes.items():
        named = [*command, *(f"{k}={v}" for k, v in env.items() if "proxy" not in k.lower())]
        found = [item for item in named if "127.0.0.1" in item or "localhost:" in item]
        assert not found, f"{host} reaches something on loopback: {found}"


@contextlib.contextmanager
def postgres(hosts: Hosts, address: str):
    """A PostgreSQL cluster of the test's own on host db (its files owned by postgres, in a
    folder that user can reach), listening on `address` only; yields the binaries' folder."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        missing("postgres", "no PostgreSQL server binaries under /usr/lib/postgresql")
    bin_dir = binaries[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="maas-hosts-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all postgres {NETWORK}.0/24 trust\n")  # the test's network only
    server = hosts.process(
        "db",
        "postgres",
        [
            *as_postgres,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-h",
            address,
            "-k",
            str(folder),
        ],
        env=dict(os.environ),
    )
    try:
        ready = [str(bin_dir / "pg_isready"), "-h", address, "-t", "2"]
        wait_until(
            lambda: subprocess.run(hosts.command("db", ready), capture_output=True).returncode == 0,
            60,
            "PostgreSQL on db",
            [server],
        )
        createdb = [*as_postgres, str(bin_dir / "createdb"), "-h", address, "mlflow"]
        hosts.check("db", createdb, env=dict(os.environ))
        yield bin_dir
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_promotion_on_one_host_serves_through_the_gateway_on_another(hosts: Hosts) -> None:
    runtime = container_runtime_or_skip()
    started = time.monotonic()
    at = hosts.addresses
    edge = f"{NETWORK}.1"  # the bridge's address: the root namespace
    registry_url, api_url = f"http://{at['registry']}:5000", f"http://{at['orchestrator']}:4200/api"
    gateway, webhooks = f"{edge}:{free_port()}", f"{edge}:{free_port()}"
    local = hosts.local
    for worker in ("worker1", "worker2"):  # each worker host's own copy (as `dvc pull` makes)
        raw = hosts.folder(worker) / "raw"
        raw.mkdir()
        for seed, month in enumerate((10, 11, 12)):
            make_flights(400, month=month, seed=seed).to_parquet(raw / f"2013-{month:02d}.parquet")
    model = [f"registry.model_name={MODEL}", f"registry.experiment={MODEL}"]
    # the pipeline's settings: the same on every host (the workers' pin), paths on `local`
    pipeline = [
        *(line for line in overrides_for(local, local / "raw") if not line.startswith("registry.")),
        *SMALL,
        *model,
        "promotion.auto_promote=false",  # the client promotes
        "promotion.floors.roc_auc=0.5",  # 400 synthetic rows a month
        "promotion.floors_optional_absent.roc_auc=0.5",
        f"deploy.state_dir={local / 'deploy'}",
        f"deploy.audit_log={local / 'audit.jsonl'}",
        f"deploy.webhook_listen={webhooks}",
        f"deploy.webhook_secret_file={local / 'webhook.secret'}",
        f"deploy.ui_address={at['registry']}:5000",
        f"monitoring.log_dir={local / 'predictions'}",
        "schedule.reconcile_interval_s=86400",  # no scheduled reconcile on a worker host
    ]
    edge_dir = hosts.folder("edge")
    edge_dir.mkdir(parents=True)
    controller = [
        *model,
        "promotion.auto_promote=false",
        f"promotion.verdict_key_file={edge_dir / 'gate.key'}",
        f"deploy.state_dir={edge_dir / 'deploy'}",
        f"deploy.audit_log={edge_dir / 'audit.jsonl'}",
        f"deploy.address={gateway}",
        f"deploy.webhook_listen={webhooks}",
        f"deploy.webhook_secret_file={edge_dir / 'webhook.secret'}",
        f"deploy.ui_address={at['registry']}:5000",
        f"monitoring.log_dir={edge_dir / 'predictions'}",
    ]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    base = {k: v for k, v in base.items() if k not in ("MAAS_GATE_KEY", "MAAS_WEBHOOK_SECRET")}
    base |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(local / "prefect")}
    base |= {"MAAS_LOG_FILE": str(local / "maas.log")}  # not the checkout's .maas/logs
    gate_key, webhook_secret = secrets.token_hex(32), secrets.token_hex(32)
    tracking = {"MLFLOW_TRACKING_URI": registry_url} | mlflow_user(PIPELINE)
    prefect = {"PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": ":".join(PREFECT_AUTH)}
    from maas.operate.prefect_server import prefect_executable

    plan: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "ui": (
            "registry",
            maas(
                "ui",
                "--backend-store-uri",
                f"postgresql://postgres@{at['db']}:5432/mlflow",
                "--artifacts-destination",
                str(local / "artifacts"),
                "--auth",
                overrides=pipeline,
            ),
            base | mlflow_user(OWNER) | {"MAAS_WEBHOOK_SECRET": webhook_secret},
        ),
        "prefect-server": (
            "orchestrator",
            [prefect_executable(), "server", "start", "--host", at["orchestrator"]],
            base | {"PREFECT_SERVER_API_AUTH_STRING": ":".join(PREFECT_AUTH)},
        ),
        "watch": (
            "edge",
            maas("watch", "--task", "flight-delay", "--interval", "10", overrides=controller),
            base
            | tracking
            | prefect
            | {
                "PREFECT_HOME": str(edge_dir / "prefect"),
                "MAAS_LOG_FILE": str(edge_dir / "maas.log"),
                "MAAS_GATE_KEY": gate_key,
                "MAAS_WEBHOOK_SECRET": webhook_secret,
            },
        ),
    }
    for worker in ("worker1", "worker2"):
        command = ["worker", "--pool", POOL, "--name", worker, "--task", "flight-delay"]
        worker_env = base | tracking | prefect | {"MAAS_GATE_KEY": gate_key}
        plan[worker] = (worker, maas(*command, overrides=pipeline), worker_env)
    schedule = maas("schedule", "--pool", POOL, "--task", "flight-delay", overrides=pipeline)
    client = [sys.executable, "-m", "tests.e2e.multi_host_client", registry_url, MODEL]
    client += [f"http://{gateway}", "1", "2"]  # v1 champion, then v2 while it sends
    checked = {name: (command, env) for name, (_, command, env) in plan.items()}
    client_env = base | mlflow_user(OWNER)
    no_loopback(checked | {"schedule": (schedule, base | prefect), "client": (client, client_env)})
    processes: dict[str, Process] = {}

    def start(*names: str) -> None:
        for name in names:
            host, command, env = plan[name]
            processes[name] = hosts.process(host, name, command, env)

    try:
        with postgres(hosts, at["db"]) as bin_dir:
            start("ui", "prefect-server")
            every = list(processes.values())
            wait_until(lambda: httpx.get(f"{api_url}/health").is_success, 180, "Prefect", every)
            hosts.check("orchestrator", schedule, env=base | prefect)
            start("watch", "worker1", "worker2")  # they start while the MLflow server does
            every = list(processes.values())
            wait_until(
                lambda: "webhook maas-controller" in processes["ui"].tail(), 180, "MLflow", every
            )
            made = httpx.post(  # the admin makes the pipeline's user
                f"{registry_url}/api/2.0/mlflow/users/create",
                json={"username": PIPELINE[0], "password": PIPELINE[1]},
                auth=OWNER,
                timeout=60,
            )
            assert made.status_code == 200, made.text
            api = Api(api_url)
            api.http.auth = PREFECT_AUTH
            nightly = api.deployment(*NIGHTLY)
            trained_by = []
            for _ in ("v1", "v2"):  # v2 on the other worker: the first one's host goes down
                run = api.start(nightly)
                ended = wait_until(lambda r=run: api.ended(r), 600, f"run {run}", every)
                assert ended["state"]["type"] == "COMPLETED", ended
                trained_by.append(str(ended["labels"].get("prefect.worker.name")))
                processes[trained_by[-1]].stop()
                every.remove(processes[trained_by[-1]])
            assert sorted(trained_by) == ["worker1", "worker2"], trained_by
            print(f"multi-host: v1, v2 trained by {trained_by}; {time.monotonic() - started:.0f}s")

            # The versions live in PostgreSQL on db and their artifacts on registry only.
            psql = [str(bin_dir / "psql"), "-h", at["db"], "-U", "postgres", "-d", "mlflow"]

            def query(sql: str) -> str:
                return hosts.check("client", [*psql, "-Atc", sql], env=dict(os.environ)).stdout

            assert query(f"SELECT count(*) FROM model_versions WHERE name = '{MODEL}'") == "2\n"
            where = query(f"SELECT artifact_location FROM experiments WHERE name = '{MODEL}'")
            assert where.startswith("mlflow-artifacts:/"), where  # the server's, by HTTP
            assert any((hosts.folder("registry") / "artifacts").rglob("model.onnx"))
            for host in ("worker1", "worker2", "edge"):  # each its own log file
                assert (hosts.folder(host) / "maas.log").is_file(), host

            done = hosts.check("client", client, env=client_env, timeout=900)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            outcomes = result["outcomes"]
            print(f"multi-host: client {result}; {time.monotonic() - started:.0f}s in all")
            assert set(outcomes) == {"1", "2"}, f"failed requests: {outcomes}"
            assert sum(outcomes.values()) >= 20, outcomes
            # ... switched by the pass the registry host's webhook delivery asked for
            switched = f"deployed v2 http://{gateway}/models/{MODEL} (asked by a delivery for v2)"
            wait_for_line(processes["watch"], switched, timeout=60)
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
        with contextlib.suppress(Exception):
            from maas.config import load_params
            from maas.operate.targets import LocalTarget

            params = load_params(PARAMS, controller)
            LocalTarget(params.deploy.state_dir, params.deploy.address, runtime).stop_all()
