"""Training flow: ingest → validate → train → evaluate → register (+ promotion policy).

Wiring only: every task wraps one function from `maas`; the logic lives there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from maas import stages
from maas.config import load_params
from maas.controller import audit
from maas.registry import start_pipeline_run
from maas.validation import DataValidationError

ingest = task(name="ingest", cache_policy=NO_CACHE, retries=1)(stages.ingest)
start_run = task(
    name="start_pipeline_run", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3
)(start_pipeline_run)
validate = task(name="validate", cache_policy=NO_CACHE)(stages.validate)
train = task(name="train", cache_policy=NO_CACHE)(stages.train)
evaluate = task(name="evaluate", cache_policy=NO_CACHE)(stages.evaluate)
register = task(name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)(
    stages.register
)


def timed(timings: dict[str, float], name: str, call: Callable[..., Any], *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return call(*args)
    finally:
        timings[name] = round(time.perf_counter() - started, 2)


@flow(name="training", log_prints=True)
def training(
    params_file: str = "params.yaml", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Run the whole pipeline once; returns the registered version and the evaluation."""
    params = load_params(params_file, overrides or [])
    t: dict[str, float] = {}
    timed(t, "ingest", ingest, params.data)
    tracking = timed(
        t, "start_run", start_run, params.registry, params.model_dump(mode="json"), params.digest()
    )
    try:
        validated = timed(t, "validate", validate, params.data, params.validation, tracking)
        trained = timed(
            t, "train", train, params.data, params.features, params.model, params.train, tracking
        )
        metrics = timed(
            t,
            "evaluate",
            evaluate,
            params.data,
            params.train,
            params.evaluate,
            params.promotion,
            params.registry,
            tracking,
        )
        registered = timed(
            t,
            "register",
            register,
            params.data,
            params.train,
            params.evaluate,
            params.registry,
            tracking,
            params.digest(),
        )
    except DataValidationError as error:
        create_markdown_artifact(
            f"**Validation blocked the run**\n\n```\n{error}\n```",
            key="validation-report",
            description="blocking failures",
        )
        tracking.finish("FAILED")
        raise
    except BaseException:
        tracking.finish("FAILED")
        raise
    tracking.finish("FINISHED")
    if "champion" in registered["aliases"]:
        audit(params, "promoted", registered["version"], tracking.client(), actor="gate",
              reason="passed the promotion gate", run_id=registered["run_id"])  # fmt: skip
    create_markdown_artifact(validated.markdown, key="validation-report", description="validation")
    create_markdown_artifact(
        stages.summary_markdown(validated, trained, metrics, registered),
        key="training-summary",
        description="metrics vs baselines vs champion",
    )
    return {
        "timings": t,
        "registered": registered,
        "metrics": metrics,
        "validation": validated.status,
        "training": {
            "best_epoch": trained.best_epoch,
            "epochs": trained.epochs_run,
            "device": trained.device,
            "samples_per_second": trained.samples_per_second,
        },
    }


if __name__ == "__main__":
    training()
