"""MLflow tracking and registry: runs, lineage tags, model versions, aliases, digests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.config import RegistryParams
from maas.inference import (
    MODEL_CONFIG_FILE,
    ONNX_FILE,
    PREPROCESSING_FILE,
    SERVING_FILES,
    WEIGHTS_FILE,
    OnnxModel,
    sha256_file,
    verify_digests,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_STORE = Path(".maas")
PYFUNC_SOURCE = Path(__file__).with_name("pyfunc_model.py")
SHA_TAG_PREFIX = "sha256."


class RegistryError(RuntimeError):
    """The registry is unreachable or a version/alias does not exist; the message says which."""


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
    raise RegistryError(f"MLflow tracking store {uri} is not reachable: {last_error}")


@contextlib.contextmanager
def _schema_lock(uri: str) -> Iterator[None]:
    """Processes opening a SQLite store at once take turns at the first connection: MLflow
    creates and migrates the schema then, and two migrations racing on one file fail
    (`CircularDependencyError` in alembic, seen with eight concurrent runs)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(client: Any, params: RegistryParams, name: str | None = None) -> str:
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


def git_commit() -> str:
    """HEAD of the working tree, with a `-dirty` suffix when there are local changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix: text[:6000]}


def start_run(
    client: Any,
    params: RegistryParams,
    run_name: str,
    all_params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    from mlflow.entities import Param

    experiment_id = ensure_experiment(client, params)
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    flat = flatten("", all_params)
    items = [Param(k, v) for k, v in sorted(flat.items())]
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    return str(run.info.run_id)


class EpochLogger:
    """Per-epoch metrics sent asynchronously so training never waits on the store."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.pending: list[Any] = []

    def __call__(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        step = int(metrics.get("epoch", 0))
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        operation = self.client.log_batch(self.run_id, metrics=batch, synchronous=False)
        if operation is not None:
            self.pending.append(operation)

    def flush(self) -> None:
        for operation in self.pending:
            operation.wait()
        self.pending.clear()


def log_metrics(client: Any, run_id: str, metrics: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])


def serving_digests(models_dir: Path) -> dict[str, str]:
    return {name: sha256_file(models_dir / name) for name in SERVING_FILES}


def register_version(
    client: Any,
    params: RegistryParams,
    run_id: str,
    models_dir: Path,
    tags: Mapping[str, str],
    input_example: Any,
    pip_requirements: list[str],
) -> Any:
    """Log the pyfunc model (models-from-code) with the serving artifacts, then create the
    version with every lineage tag in the same call, so no version exists without its tags."""
    import mlflow

    digests = serving_digests(models_dir)
    artifacts = {
        name: str(models_dir / name)
        for name in (ONNX_FILE, PREPROCESSING_FILE, MODEL_CONFIG_FILE, WEIGHTS_FILE)
    }
    package_dir = Path(__file__).parent
    with mlflow.start_run(run_id=run_id, log_system_metrics=False):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_SOURCE),
            artifacts=artifacts,
            code_paths=[str(package_dir)],
            model_config={"sha256": digests, "threshold": 0.5},
            pip_requirements=pip_requirements,
            input_example=input_example,
            signature=input_signature(input_example),
        )
        all_tags = {**tags, **{f"{SHA_TAG_PREFIX}{k}": v for k, v in digests.items()}}
        version = client.create_model_version(
            name=_ensure_registered_model(client, params.model_name),
            source=info.model_uri,
            run_id=run_id,
            tags=all_tags,
            model_id=info.model_id,
        )
    return client.get_model_version(params.model_name, str(version.version))


def input_signature(example: Any) -> Any:
    """The example's column types; float (weather) columns may be null or absent."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, DataType, Schema

    inferred = infer_signature(example).inputs.inputs
    columns: list[Any] = [
        ColSpec(c.type, c.name, required=c.type != DataType.double) for c in inferred
    ]
    return ModelSignature(inputs=Schema(columns))


def _ensure_registered_model(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="Will a NYC flight arrive 15+ min late?"
            )
        except MlflowException:  # a concurrent run created it first
            client.get_registered_model(name)
    return name


def get_alias_version(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error.error_code) or "not found" in str(error).lower():
            return None
        raise


def get_version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version!r}") from None


def set_alias(client: Any, name: str, alias: str, version: str, attempts: int = 5) -> None:
    """Point `alias` at `version`. MLflow's SQL store reads, then inserts or updates: two
    runs setting the same alias at once make one fail on the unique key (seen with eight
    concurrent registrations on SQLite); the retry finds the row and updates it."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(name, alias, str(version))
            return
        except MlflowException as error:
            if "UNIQUE constraint" not in str(error) and "duplicate key" not in str(error):
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def promote(client: Any, name: str, version: str, reason: str = "manual") -> Any:
    """Move `champion` to `version` (the previous champion keeps its tags for rollback)."""
    target = get_version(client, name, version)
    previous = get_alias_version(client, name, CHAMPION)
    set_alias(client, name, CHAMPION, target.version)
    client.set_model_version_tag(name, target.version, "promoted_by", reason)
    if previous is not None and previous.version != target.version:
        client.set_model_version_tag(name, target.version, "previous_champion", previous.version)
    return target


def version_digests(version: Any) -> dict[str, str]:
    return {
        k[len(SHA_TAG_PREFIX) :]: v for k, v in version.tags.items() if k.startswith(SHA_TAG_PREFIX)
    }


def logged_model_id(version: Any) -> str:
    """The LoggedModel behind a version (the SQL store leaves `model_id` empty; source has it)."""
    if version.model_id:
        return str(version.model_id)
    source = str(version.source or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    raise RegistryError(f"version {version.version} has no logged model to download ({source})")


def download_serving_artifacts(client: Any, version: Any, dest: Path) -> Path:
    """Download only the serving files of a version and verify each sha256 against its tags."""
    import mlflow

    location = client.get_logged_model(logged_model_id(version)).artifact_location.rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    for name in SERVING_FILES:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/artifacts/{name}", dst_path=str(dest)
        )
    verify_digests(dest, version_digests(version))
    return dest


def load_version_model(client: Any, version: Any) -> OnnxModel:
    """The version's ONNX model, digest-verified (never unpickled)."""
    folder = Path(tempfile.mkdtemp(prefix=f"maas-v{version.version}-"))
    download_serving_artifacts(client, version, folder)
    return OnnxModel.load(folder, expected_digests=version_digests(version))


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    created: str
    gate: str
    validation: str
    roc_auc: float | None
    baseline_logistic: float | None
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def list_versions(client: Any, name: str) -> list[VersionRow]:
    from mlflow.exceptions import MlflowException

    try:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
    except MlflowException:
        return []
    rows = []
    for mv in client.search_model_versions(f"name='{name}'", order_by=["version_number DESC"]):
        tags = mv.tags

        def number(key: str, tags: Mapping[str, str] = tags) -> float | None:
            return float(tags[key]) if key in tags else None

        rows.append(
            VersionRow(
                version=str(mv.version),
                aliases=sorted(aliases_by_version.get(str(mv.version), [])),
                created=time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(mv.creation_timestamp / 1000)
                ),
                gate=(
                    "promoted"
                    if tags.get("gate_promoted") == "true"
                    else "passed"
                    if tags.get("gate_passed") == "true"
                    else "failed"
                    if "gate_passed" in tags
                    else "?"
                ),
                validation=tags.get("validation_status", "?"),
                roc_auc=number("test_roc_auc"),
                baseline_logistic=number("baseline_logistic_regression_roc_auc"),
                run_id=mv.run_id or "",
            )
        )
    return rows


@dataclass(frozen=True)
class RunTracking:
    """The MLflow run a pipeline logs into; stages get one of these (or None under DVC)."""

    tracking_uri: str
    run_id: str

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def epoch_logger(self) -> EpochLogger:
        return EpochLogger(self.client(), self.run_id)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        log_metrics(self.client(), self.run_id, metrics)

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        if Path(local_dir).exists():
            self.client().log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if Path(path).is_file():
            self.client().log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_tag(self.run_id, key, value)

    def finish(self, status: str) -> None:
        self.client().set_terminated(self.run_id, status)


def start_pipeline_run(
    params: RegistryParams, all_params: Mapping[str, Any], params_digest: str
) -> RunTracking:
    """Open the MLflow run of one pipeline execution, with its params and lineage tags."""
    client = connect(params)
    run_id = start_run(
        client,
        params,
        run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}",
        all_params=all_params,
        tags={
            "git_commit": git_commit(),
            "params_digest": params_digest,
            "pipeline": "maas.training",
        },
    )
    return RunTracking(client.tracking_uri, run_id)


def store_exists(params: RegistryParams) -> bool:
    """False only for an embedded SQLite store that was never created (no champion possible)."""
    uri = resolve_tracking_uri(params)
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True
