"""Commands of the training pipeline: `run`, `tune`, `ingest`, `monitor`, `data add-month`,
`stage ...`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from maas.cli.common import (
    DEFAULT_PARAMS,
    DvcAddOption,
    JsonOption,
    ParamsOption,
    SetOption,
    TaskOption,
    handled,
    load,
    out,
    track_raw_data,
)

stage_app = typer.Typer(help="Single pipeline stages (what dvc.yaml runs).", no_args_is_help=True)
data_app = typer.Typer(help="The raw data folder (data.raw_dir).", no_args_is_help=True)
MonthsOption = Annotated[
    list[str] | None,
    typer.Option("--partition", "--month", help="A partition (e.g. 2013-05) to write."),
]


@handled
def run(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run the whole training pipeline once (a Prefect flow) and print the outcome."""
    load(params_file, overrides, task)  # fail fast with a clear message before Prefect starts
    from maas.flows.training import training

    result = training(params_file=str(params_file), overrides=list(overrides or []), task=task)
    if json_output:
        print(json.dumps(result, default=str))
        return
    from maas.cli.render import print_run

    print_run(result)


@handled
def tune(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
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
    params = load(params_file, overrides, task)
    from maas.flows.tuning import tuning

    result = tuning(
        params_file=str(params_file),
        overrides=list(overrides or []),
        trials=trials,
        timeout_s=timeout,
        task=task,
    )
    if json_output:
        print(json.dumps(result, default=str))
        return
    out.print(
        f"study {result['study']}: trials {result['trials']}; best validation {result['metric']} "
        f"{result['best_value']:.4f} with {result['best_values']}"
    )
    out.print(f"written to {params.tune.output}: `maas run` trains with these values now")


@handled
def ingest(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
    months: MonthsOption = None,
    dvc_add: DvcAddOption = True,
) -> None:
    """Fill data.raw_dir with the task's partitions from its data.source (if empty)."""
    params = load(params_file, overrides, task)
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
def data_add_month(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
    dvc_add: DvcAddOption = True,
) -> None:
    """Add the partition after the newest one (from data.source): new data arriving."""
    params = load(params_file, overrides, task)
    from maas.pipeline.data.sources import add_next_partition

    path = add_next_partition(params.data)
    out.print(f"added {path}: the next run trains on the months before it and tests on it")
    track_raw_data(params.data.raw_dir, dvc_add)


@stage_app.command("validate")
@handled
def stage_validate(
    params_file: ParamsOption = DEFAULT_PARAMS, task: TaskOption = None, overrides: SetOption = None
) -> None:
    """Validate the partitions; write data/processed and reports/validation."""
    params = load(params_file, overrides, task)
    from maas.pipeline.stages import validate_data

    out.print(validate_data(params.data, params.validation).markdown)


@stage_app.command("train")
@handled
def stage_train(
    params_file: ParamsOption = DEFAULT_PARAMS, task: TaskOption = None, overrides: SetOption = None
) -> None:
    """Train the model on the validated training window; write models/."""
    params = load(params_file, overrides, task)
    from maas.pipeline.stages import train_model

    summary = train_model(
        data=params.data,
        features=params.features,
        model=params.model,
        train=params.train,
        request=params.request,
    )
    out.print(
        f"best epoch {summary.best_epoch}/{summary.epochs_run} on {summary.device}, "
        f"validation {summary.validation_metric} {summary.validation_score:.4f}"
    )


@stage_app.command("evaluate")
@handled
def stage_evaluate(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
    champion: Annotated[
        bool, typer.Option(help="Re-score the registry's champion if one exists.")
    ] = True,
) -> None:
    """Evaluate on the test month against baselines (and the champion); write metrics + plots."""
    params = load(params_file, overrides, task)
    from maas.pipeline.stages import evaluate_model
    from maas.tracking.store import store_exists

    registry = params.registry if champion and store_exists(params.registry) else None
    train = params.train
    metrics = evaluate_model(
        data=params.data,
        train=train,
        evaluate=params.evaluate,
        promotion=params.promotion,
        registry=registry,
    )
    out.print(json.dumps({"test": metrics.test, "gate": metrics.gate.to_dict()}, indent=1))


@handled
def monitor(
    params_file: ParamsOption = DEFAULT_PARAMS,
    task: TaskOption = None,
    overrides: SetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Judge what the task's champion served and what data arrived since it trained: drift
    (Evidently) and realized quality per period; alert, and retrain when the policy says so."""
    load(params_file, overrides, task)
    from maas.flows.monitoring import monitoring

    result = monitoring(params_file=str(params_file), overrides=list(overrides or []), task=task)
    if json_output:
        print(json.dumps(result, default=str))
        return
    from maas.cli.render import print_monitoring

    print_monitoring(result)
