"""Each batch job is an MLflow run in the experiment `<model>-scoring`: which version scored
which input (its digest and rows) into which output, how many rows were refused, how long it
took. `maas status --json` and the MLflow UI list them; the run links the scored table to the
registered version like a training run links a version to its data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maas.config import RegistryParams
from maas.tracking.store import ensure_experiment

if TYPE_CHECKING:
    from mlflow import MlflowClient

TAG = "maas.scoring."


def experiment_name(model: str) -> str:
    return f"{model}-scoring"


def record_job(
    client: MlflowClient,
    registry: RegistryParams,
    *,
    job: dict[str, str],
    metrics: dict[str, float],
) -> str:
    """One finished run for a job (`job`: version, input, input digest, output, ...)."""
    experiment = ensure_experiment(client, registry, experiment_name(registry.model_name))
    run = client.create_run(
        experiment,
        run_name=f"score v{job['version']}",
        tags={f"{TAG}{key}": str(value)[:5000] for key, value in job.items()},
    )
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.update_run(run.info.run_id, status="FINISHED")  # set_terminated prints a URL
    return str(run.info.run_id)


def recent_jobs(client: MlflowClient, model: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest jobs of a model's versions, newest first (none when none ran)."""
    experiment = client.get_experiment_by_name(experiment_name(model))
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )
    return [
        {
            **{k[len(TAG) :]: v for k, v in run.data.tags.items() if k.startswith(TAG)},
            **run.data.metrics,
            "run_id": run.info.run_id,
        }
        for run in runs
    ]
