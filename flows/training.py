"""Training flow: ingest → validate → train → evaluate → register (+ the gate's audit event).

Wiring only: every task wraps one function from `maas` and is called by keyword; the run's
status, the verdict and what is audited are decided in `maas`, not here.
"""

from __future__ import annotations

from typing import Any

from maas.flows.artifacts import publish_run
from maas.flows.training_tasks import (
    audit_promotion,
    evaluate,
    ingest,
    register,
    start_run,
    train,
    validate,
)
from prefect import flow

from maas.clock import timed
from maas.config.scheduled import load_run_params
from maas.pipeline import report
from maas.pipeline.data.windows import run_lock


@flow(name="training", log_prints=True)
def training(
    params_file: str = "params.yaml", overrides: list[str] | None = None, task: str | None = None
) -> dict[str, Any]:
    """Run the whole pipeline once for `task` (default: params.yaml's); returns the registered
    version and the evaluation."""
    params = load_run_params(params_file, overrides, task)  # a scheduled run: the owner's
    timings: dict[str, float] = {}
    # one run at a time on these working files, ingest included; FINISHED, or FAILED
    with run_lock(params.data, params.train.models_dir):
        with timed(timings, "ingest"):
            ingest(data=params.data)
        with timed(timings, "start_run"):
            tracking = start_run(
                params=params.registry,
                all_params=params.model_dump(mode="json"),
                params_digest=params.digest(),
            )
        with tracking.recording_outcome():
            with timed(timings, "validate"):
                validated = validate(
                    data=params.data, validation=params.validation, tracking=tracking
                )
            with timed(timings, "train"):
                trained = train(
                    data=params.data,
                    features=params.features,
                    model=params.model,
                    train=params.train,
                    request=params.request,
                    tracking=tracking,
                    promotion=params.promotion,
                )
            with timed(timings, "evaluate"):
                metrics = evaluate(
                    data=params.data,
                    train=params.train,
                    evaluate=params.evaluate,
                    promotion=params.promotion,
                    registry=params.registry,
                    tracking=tracking,
                )
            with timed(timings, "register"):
                registered = register(
                    data=params.data,
                    models_dir=params.train.models_dir,
                    metrics=metrics,
                    registry=params.registry,
                    tracking=tracking,
                    params_digest=params.digest(),
                    verdict_key_file=params.promotion.verdict_key_file,
                )
    audit_promotion(params=params, registered=registered, client=tracking.client())
    publish_run(validated, trained, metrics, registered)
    return report.run_outcome(timings, validated, trained, metrics, registered)
