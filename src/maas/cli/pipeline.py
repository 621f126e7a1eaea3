"""Commands of the training pipeline: `run`, `tune`, `ingest`, `monitor`, `data add-month`,
`stage ...`."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Annotated

import typer

from maas.cli.common import (
    DvcAddOption,
    JsonOption,
    Project,
    handled,
    out,
    track_raw_data,
    with_project,
)
from maas.cli.logs import adopt_torch_loggers
from maas.cli.prefect_boot import EarlyServer
from maas.config import Params


def stage_lock(params: Params) -> contextlib.AbstractContextManager[None]:
    """A DVC stage holds the pipeline's run lock as the flow does (one run at a time on the
    same working files); under torchrun only rank 0 takes it (the other ranks are the same
    run, and would wait on it forever)."""
    from maas.pipeline.data.windows import run_lock

    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return run_lock(params.data, params.train.models_dir)


stage_app = typer.Typer(help="Single pipeline stages (what dvc.yaml runs).", no_args_is_help=True)
data_app = typer.Typer(help="The raw data folder (data.raw_dir).", no_args_is_help=True)
MonthsOption = Annotated[
    list[str] | None,
    typer.Option("--partition", "--month", help="A partition (e.g. 2013-05) to write."),
]


@handled
@with_project
def run(
    project: Project,
    json_output: JsonOption = False,
) -> None:
    """Run the whole training pipeline once (a Prefect flow) and print the outcome."""
    project.load()  # fail fast with a clear message before Prefect starts
    early = EarlyServer.start()  # Prefect's temporary server boots while the flow imports
    adopt_torch_loggers()
    from maas.flows.training import training

    early.wait()
    result = training(**project.flow_args())
    if json_output:
        print(json.dumps(result, default=str))
        return
    from maas.cli.render import print_run

    print_run(result)


@handled
@with_project
def tune(
    project: Project,
    trials: Annotated[
        int | None, typer.Option(min=1, help="The study's budget (default: tune.trials).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Seconds after which no trial starts.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Search model and training parameters with Optuna on the validation slice (a Prefect
    flow); the best values go to tune.output, which `maas run` reads over params.yaml."""
    params = project.load()
    adopt_torch_loggers()
    from maas.flows.tuning import tuning

    result = tuning(**project.flow_args(), trials=trials, timeout_s=timeout)
    if json_output:
        print(json.dumps(result, default=str))
        return
    out.print(
        f"study {result['study']}: trials {result['trials']}; best validation {result['metric']} "
        f"{result['best_value']:.4f} with {result['best_values']}"
    )
    out.print(f"written to {params.tune.output}: `maas run` trains with these values now")


@handled
@with_project
def ingest(
    project: Project,
    months: MonthsOption = None,
    dvc_add: DvcAddOption = True,
) -> None:
    """Fill data.raw_dir with the task's partitions from its data.source (if empty)."""
    params = project.load()
    from maas.pipeline.stages import ingest_data

    result = ingest_data(params.data, months)
    out.print(
        f"{len(result.written)} partition(s) written; {len(result.partitions)} in "
        f"{params.data.raw_dir}: {', '.join(result.partitions)}"
    )
    track_raw_data(params.data.raw_dir, dvc_add)


@data_app.command("add-next")
@data_app.command("add-month", hidden=True)  # the name from before weekly/daily partitions
@handled
@with_project
def data_add_month(
    project: Project,
    dvc_add: DvcAddOption = True,
) -> None:
    """Add the partition after the newest one (from data.source): new data arriving."""
    params = project.load()
    from maas.pipeline.data.sources import add_next_partition

    path = add_next_partition(params.data)
    out.print(f"added {path}: the next run trains on the months before it and tests on it")
    track_raw_data(params.data.raw_dir, dvc_add)


@stage_app.command("validate")
@handled
@with_project
def stage_validate(
    project: Project,
) -> None:
    """Validate the partitions; write data/processed and reports/validation."""
    params = project.load()
    from maas.pipeline.stages import validate_data

    with stage_lock(params):
        out.print(validate_data(params.data, params.validation).markdown)


@stage_app.command("train")
@handled
@with_project
def stage_train(
    project: Project,
) -> None:
    """Train the model on the validated training window; write models/."""
    params = project.load()
    adopt_torch_loggers()
    from maas.pipeline.stages import train_model

    with stage_lock(params):
        summary = train_model(
            data=params.data,
            features=params.features,
            model=params.model,
            train=params.train,
            request=params.request,
            promotion=params.promotion,
        )
    out.print(
        f"best epoch {summary.best_epoch}/{summary.epochs_run} on {summary.device}, "
        f"validation {summary.validation_metric} {summary.validation_score:.4f}"
    )


@stage_app.command("evaluate")
@handled
@with_project
def stage_evaluate(
    project: Project,
    champion: Annotated[
        bool, typer.Option(help="Re-score the registry's champion if one exists.")
    ] = True,
) -> None:
    """Evaluate on the test month against baselines (and the champion); write metrics + plots."""
    params = project.load()
    from maas.pipeline.stages import evaluate_model
    from maas.tracking.store import store_exists

    registry = params.registry if champion and store_exists(params.registry) else None
    train = params.train
    with stage_lock(params):
        metrics = evaluate_model(
            data=params.data,
            train=train,
            evaluate=params.evaluate,
            promotion=params.promotion,
            registry=registry,
        )
    out.print(json.dumps({"test": metrics.test, "gate": metrics.gate.to_dict()}, indent=1))


@handled
@with_project
def monitor(
    project: Project,
    json_output: JsonOption = False,
) -> None:
    """Judge what the task's champion served and what data arrived since it trained: drift
    (Evidently) and realized quality per period; alert, and retrain when the policy says so."""
    project.load()
    from maas.flows.monitoring import monitoring

    result = monitoring(**project.flow_args())
    if json_output:
        print(json.dumps(result, default=str))
        return
    from maas.cli.render import print_monitoring

    print_monitoring(result)
