"""Tuning flow: ingest → validate → an Optuna study on the training window's validation slice
(`maas tune`). Wiring only: the study, its trials and what is written live in
`maas.pipeline.training.tune`."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from maas.config import load_params
from maas.pipeline import stages
from maas.pipeline.data.windows import run_lock
from maas.pipeline.training.tune import tune_model

ingest = task(name="ingest", cache_policy=NO_CACHE, retries=1)(stages.ingest_data)
validate = task(name="validate", cache_policy=NO_CACHE)(stages.validate_data)
tune = task(name="tune", cache_policy=NO_CACHE)(tune_model)


@flow(name="tuning", log_prints=True)
def tuning(
    params_file: str = "params.yaml",
    overrides: list[str] | None = None,
    trials: int | None = None,
    timeout_s: float | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Search model and training parameters; the best go to `tune.output` for `maas run`."""
    params = load_params(params_file, overrides or [], task)
    ingest(data=params.data)
    with run_lock(params.data, params.train.models_dir):  # the same working files as training
        validate(data=params.data, validation=params.validation)
        result = tune(params=params, trials=trials, timeout_s=timeout_s)
    create_markdown_artifact(
        f"**study {result.study}**: best validation {result.metric} {result.best_value:.4f} with "
        f"`{result.best_values}` (trials: {result.trials}); written to `{params.tune.output}`",
        key="tuning",
        description="the best parameters found",
    )
    return result.to_dict()
