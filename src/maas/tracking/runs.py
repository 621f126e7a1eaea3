"""MLflow runs of the pipeline: one run per execution with its params, lineage tags, epoch
metrics and artifacts; its status says how the run ended."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.config import RegistryParams
from maas.tracking.store import connect, ensure_experiment

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
    client: MlflowClient,
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

    def __init__(self, client: MlflowClient, run_id: str) -> None:
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


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])


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

    @contextlib.contextmanager
    def recording_outcome(self) -> Iterator[None]:
        """The run ends FINISHED when the block completes and FAILED when it raises (a blocked
        validation included), so no run is left RUNNING."""
        try:
            yield
        except BaseException:
            self.finish("FAILED")
            raise
        self.finish("FINISHED")


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
