"""The MLflow tracking store: which URI, a checked connection, experiments."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.config import RegistryParams
from maas.errors import RegistryError
from maas.files import locked
from maas.redact import redact_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_STORE = Path(".maas")


def resolve_tracking_uri(params: RegistryParams) -> str:
    """params.registry.tracking_uri, else MLFLOW_TRACKING_URI, else the embedded SQLite store."""
    if params.tracking_uri:
        return params.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    DEFAULT_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"


def connect(params: RegistryParams, retries: int = 3, backoff_s: float = 1.0) -> Any:
    """An MlflowClient on the configured store, checked to answer, with retries and backoff."""
    import mlflow
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    last_error: Exception | None = None
    for attempt in range(retries):
        try:
            with _schema_lock(uri):  # the stores create/migrate the schema on first use
                client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
            return client
        except Exception as error:  # unreachable server, locked DB, bad URI
            last_error = error
            time.sleep(backoff_s * 2**attempt)
    # a DSN's password never reaches a message (the driver's error may repeat the URI)
    shown = redact_text(f"MLflow tracking store {uri} is not reachable: {last_error}", [])
    raise RegistryError(shown)


def _schema_lock(uri: str) -> contextlib.AbstractContextManager[None]:
    """Processes opening a SQLite store at once take turns at the first connection: MLflow
    creates and migrates the schema then, and two migrations racing on one file fail
    (`CircularDependencyError` in alembic, seen with eight concurrent runs)."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    return locked(Path(uri.removeprefix("sqlite:///") + ".lock"))


def ensure_experiment(client: MlflowClient, params: RegistryParams, name: str | None = None) -> str:
    name = name or params.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if not client.tracking_uri.startswith(("http:", "https:", "databricks")):
        # a database store (SQLite, PostgreSQL, MySQL) keeps artifacts in artifact_root;
        # a tracking server decides for itself (its --artifacts-destination)
        params.artifact_root.mkdir(parents=True, exist_ok=True)
        location = params.artifact_root.resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except Exception:  # created meanwhile by a concurrent run
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def store_exists(params: RegistryParams) -> bool:
    """False only for an embedded SQLite store that was never created (no champion possible)."""
    uri = resolve_tracking_uri(params)
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True
