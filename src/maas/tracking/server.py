"""`maas ui`: the MLflow tracking server + UI on the project's store, wired to the controller.

MLflow fires webhooks only from its server's REST handlers (a client writing to SQLite fires
nothing; the UI goes through the server). A local receiver needs http and private addresses
allowed, and the server needs a stable Fernet key to store webhook secrets encrypted. The
server runs maas's app (`--app-name maas`, `maas.tracking.server_app`): webhooks may target
only the controller's receiver; with `--auth` (team mode) MLflow's basic-auth app under the
same rule (`maas.tracking.server_auth`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from maas.config import Params
from maas.errors import TrackingServerError
from maas.files import read_or_create_secret
from maas.net import ProcessExited, parse_address, wait_for_http
from maas.tracking.server_app import ALLOWED_URLS_ENV
from maas.tracking.server_auth import (
    APP_NAME,
    PASSWORD_ENV,
    USERNAME_ENV,
    AuthFiles,
    auth_environment,
)
from maas.tracking.store import resolve_tracking_uri
from maas.tracking.verdict import KEY_ENV
from maas.tracking.webhooks import ALIAS_EVENTS, load_or_create_secret

log = logging.getLogger(__name__)

WEBHOOK_NAME = "maas-controller"


def receiver_url(params: Params) -> str | None:
    """The controller's webhook receiver: the one URL the server lets webhooks target."""
    listen = params.deploy.webhook_listen
    return f"http://{listen}/webhook" if listen else None


def fernet_key(path: Path) -> str:
    """A Fernet key kept under .maas/ (0600): the same key across restarts and workers."""

    def generate() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    return read_or_create_secret(
        path, env="MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", generate=generate
    )


def auth_files(params: Params) -> AuthFiles:
    return AuthFiles(params.deploy.webhook_secret_file.parent)


def server_environment(params: Params, *, auth: bool = False) -> dict[str, str]:
    """The MLflow server's environment: this one without the gate key (the server never signs
    and must not be able to) or the owner's client credentials, plus its webhook settings
    (and, with `auth`, the basic-auth app's).

    MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS: the controller's receiver listens on loopback or a
    private network, which MLflow's SSRF guard refuses by default, and MLflow 3.17 has no
    per-host allowlist (mlflow/webhooks/ssrf.py checks only this switch); maas's app allows
    only $MAAS_WEBHOOK_ALLOWED_URLS, the receiver (docs/security.md, "Webhook targets")."""
    key_file = params.deploy.webhook_secret_file.with_name("webhook.fernet")
    withheld = {KEY_ENV, USERNAME_ENV, PASSWORD_ENV}
    inherited = {name: value for name, value in os.environ.items() if name not in withheld}
    receiver = receiver_url(params)
    return {
        **inherited,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",  # the controller listens on http
        # the receiver is on this machine or its network; MLflow's switch opens every private
        # address, so maas's app (server_app) then allows only the receiver's URL: tested by
        # tests/integration/test_webhook_targets.py (an internal service is never reached)
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        ALLOWED_URLS_ENV: receiver or "",  # ... and webhooks may reach only it
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": fernet_key(key_file),
        "MLFLOW_WEBHOOK_CACHE_TTL": "2",  # a new webhook fires within seconds, not a minute
        **(auth_environment(auth_files(params)) if auth else {}),
    }


def start_server(
    params: Params,
    log_file: Path,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    *,
    auth: bool = False,
) -> subprocess.Popen[bytes]:
    """`mlflow server` on the store the pipeline writes to (or `backend_store_uri`: team mode,
    e.g. PostgreSQL), bound to deploy.ui_address, proxying artifacts to `artifacts_destination`
    (default registry.artifact_root; an s3:// URI for a shared bucket); with `auth`, MLflow's
    users and permissions (maas.tracking.server_auth)."""
    store = backend_store_uri or resolve_tracking_uri(params.registry)
    if store.startswith("http"):
        raise TrackingServerError(
            f"the tracking URI is already a server ({store}): open its UI there, or start one "
            "on a database with --backend-store-uri"
        )
    host, port = parse_address(params.deploy.ui_address)
    if artifacts_destination is None:
        params.registry.artifact_root.mkdir(parents=True, exist_ok=True)
        artifacts_destination = str(params.registry.artifact_root.resolve())
    env = {**server_environment(params, auth=auth), "MLFLOW_BACKEND_STORE_URI": store}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handle = log_file.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",  # the store by environment: a DSN's password never on argv (`ps`)
            "--artifacts-destination",
            artifacts_destination,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--app-name",
            APP_NAME if auth else "maas",
        ],
        env=env,
        stdout=handle,
        stderr=handle,
    )


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    try:
        healthy = wait_for_http(f"{url}/health", timeout_s, alive=lambda: process.poll() is None)
    except ProcessExited:
        raise TrackingServerError(f"mlflow server exited with code {process.returncode}") from None
    if not healthy:
        raise TrackingServerError(f"mlflow server at {url} not healthy within {timeout_s:.0f}s")


def register_webhook(server_url: str, params: Params) -> Any:
    """Create or update the `maas-controller` webhook for alias events (idempotent)."""
    from mlflow import MlflowClient

    if not params.deploy.webhook_listen:
        raise TrackingServerError("deploy.webhook_listen is null: no controller to notify")
    client = MlflowClient(tracking_uri=server_url, registry_uri=server_url)
    secret = load_or_create_secret(params.deploy.webhook_secret_file)
    url = receiver_url(params)
    assert url is not None  # webhook_listen is set
    events: Any = list(ALIAS_EVENTS)  # WebhookEventStr literals
    existing = [w for w in client.list_webhooks() if w.name == WEBHOOK_NAME]
    if existing:
        return client.update_webhook(
            existing[0].webhook_id,
            url=url,
            events=events,
            secret=secret,
            status="ACTIVE",
        )
    return client.create_webhook(
        WEBHOOK_NAME,
        url,
        events=events,
        secret=secret,
        description="maas promotion controller: champion moved -> deploy",
    )


def start_ui(
    params: Params,
    log_file: Path,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    *,
    auth: bool = False,
) -> tuple[subprocess.Popen[bytes], Any]:
    """`maas ui`: the server started, healthy, and the controller's webhook registered (with
    `auth`, as the admin: this process's MLflow credentials); (the server process, the
    webhook). On any failure the server is stopped again."""
    from mlflow.exceptions import MlflowException

    process = start_server(params, log_file, backend_store_uri, artifacts_destination, auth=auth)
    try:
        wait_healthy(f"http://{params.deploy.ui_address}", process)
        try:
            hook = register_webhook(f"http://{params.deploy.ui_address}", params)
        except MlflowException as error:  # e.g. 401: not the admin's credentials
            raise TrackingServerError(f"registering the controller's webhook: {error}") from None
    except TrackingServerError as error:
        process.terminate()
        raise TrackingServerError(f"{error} (log: {log_file})") from None
    return process, hook
