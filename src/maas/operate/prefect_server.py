"""The Prefect server `maas schedule` schedules on (the deployments are in flows/schedule.py).

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maas.config import Params
from maas.errors import ScheduleError
from maas.net import ProcessExited, http_ok, parse_address, wait_for_http
from maas.redact import secret_name

log = logging.getLogger(__name__)


def prefect_executable() -> str:
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else "prefect"


def api_healthy(api_url: str) -> bool:
    return http_ok(f"{api_url.rstrip('/')}/health")


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the Prefect server is given of this process's environment: everything but its
    secrets (the gate key, MLflow and cloud credentials, alert and webhook secrets): the
    server never needs them, and its flows run in the worker, not in it. Prefect's own
    settings (`PREFECT_*`, the database URL included) are kept."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith("PREFECT_") or not secret_name(name)
    }


def start_prefect_server(address: str, log_file: Path) -> subprocess.Popen[bytes]:
    """`prefect server start` on `address` (UI and API); its database from Prefect's own
    settings (SQLite in ~/.prefect unless PREFECT_API_DATABASE_CONNECTION_URL is set). With
    $PREFECT_API_AUTH_STRING set (the client's `user:password`), the server requires it
    (PREFECT_SERVER_API_AUTH_STRING): anonymous API calls get 401."""
    host, port = parse_address(address)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handle = log_file.open("ab")
    env = {**server_environment(os.environ), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        env["PREFECT_SERVER_API_AUTH_STRING"] = os.environ["PREFECT_API_AUTH_STRING"]
    return subprocess.Popen(
        [prefect_executable(), "server", "start", "--host", host, "--port", str(port)],
        stdout=handle,
        stderr=handle,
        env=env,
        start_new_session=True,
    )


def wait_for_api(api_url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    alive = (lambda: process.poll() is None) if process is not None else None
    try:
        healthy = wait_for_http(
            f"{api_url.rstrip('/')}/health", timeout_s, alive=alive, interval_s=0.5
        )
    except ProcessExited:
        assert process is not None
        raise ScheduleError(f"prefect server exited with code {process.returncode}") from None
    if not healthy:
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


def stop_server(process: subprocess.Popen[Any] | None, grace_s: float = 30) -> None:
    """Stop a long-running process group we started (a Prefect server, a `maas watch`):
    SIGTERM, then SIGKILL when it has not exited after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    import signal

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
