"""`maas schedule`: the training flow on a cron and the controller's reconcile on an interval,
as Prefect deployments served by one process (`prefect.serve`).

Schedules need a real Prefect server (the temporary one that flows start by themselves runs
no scheduler). With `PREFECT_API_URL` set (a team's server), the deployments go there;
otherwise `maas schedule` starts `prefect server start` at `schedule.prefect_address`
(SQLite under ~/.prefect) and stops it on exit.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from maas.config import Params

log = logging.getLogger(__name__)

TRAINING_DEPLOYMENT = "nightly"
RECONCILE_DEPLOYMENT = "controller"


class ScheduleError(RuntimeError):
    """No Prefect server to schedule on."""


def prefect_executable() -> str:
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else "prefect"


def api_healthy(api_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_prefect_server(address: str, log_file: Path) -> subprocess.Popen[bytes]:
    """`prefect server start` on `address` (UI and API); its database from Prefect's own
    settings (SQLite in ~/.prefect unless PREFECT_API_DATABASE_CONNECTION_URL is set)."""
    host, _, port = address.rpartition(":")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handle = log_file.open("ab")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [prefect_executable(), "server", "start", "--host", host, "--port", port],
        stdout=handle, stderr=handle, env=env, start_new_session=True,
    )  # fmt: skip


def wait_for_api(api_url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ScheduleError(f"prefect server exited with code {process.returncode}")
        if api_healthy(api_url):
            return
        time.sleep(0.5)
    raise ScheduleError(f"the Prefect API at {api_url} did not answer within {timeout_s:.0f}s")


def ensure_server(params: Params, log_file: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """The API URL to schedule on, and the server process when this call started one.

    Must run before Prefect is imported: Prefect reads PREFECT_API_URL at import time.
    """
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        if not api_healthy(api_url):
            raise ScheduleError(f"PREFECT_API_URL={api_url} does not answer (is the server up?)")
        return api_url, None
    api_url = f"http://{params.schedule.prefect_address}/api"
    if api_healthy(api_url):  # a server already runs there (another `maas schedule`, a user)
        os.environ["PREFECT_API_URL"] = api_url
        return api_url, None
    process = start_prefect_server(params.schedule.prefect_address, log_file)
    try:
        wait_for_api(api_url, process, timeout_s=180)
    except ScheduleError as error:
        process.terminate()
        raise ScheduleError(f"{error} (log: {log_file})") from None
    os.environ["PREFECT_API_URL"] = api_url
    return api_url, process


def deployments(params: Params, params_file: Path, overrides: list[str]) -> list[Any]:
    """The two deployments: training on `schedule.training_cron`, reconcile on an interval."""
    from flows.promotion import reconcile
    from flows.training import training
    from prefect.schedules import Cron, Interval

    parameters = {"params_file": str(params_file.resolve()), "overrides": overrides}
    schedule = params.schedule
    return [
        training.to_deployment(
            TRAINING_DEPLOYMENT,
            schedules=[Cron(schedule.training_cron, timezone=schedule.timezone)],
            parameters=parameters,
            description="ingest → validate → train → evaluate → register, on new partitions",
            tags=["maas", params.registry.model_name],
        ),
        reconcile.to_deployment(
            RECONCILE_DEPLOYMENT,
            schedules=[Interval(schedule.reconcile_interval_s)],
            parameters=parameters,
            description="deploy the version at `champion` when it is not the one serving",
            tags=["maas", params.registry.model_name],
        ),
    ]


def serve_deployments(params: Params, params_file: Path, overrides: list[str]) -> None:
    """Register the deployments and run their scheduled flow runs here until interrupted."""
    from prefect import serve

    serve(*deployments(params, params_file, overrides), print_starting_message=False)


def stop_server(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    import signal

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
