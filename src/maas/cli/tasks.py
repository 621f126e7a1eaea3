"""`maas task ...`: make a task file from a data file, and list the tasks."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated

import typer

from maas.cli.common import DEFAULT_PARAMS, JsonOption, ParamsOption, Project, handled, out
from maas.config import ConfigError, task_files

task_app = typer.Typer(help="Tasks: one file each in tasks/ (maas task init makes one).")


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


@task_app.command("init")
@handled
def init(
    name: Annotated[str, typer.Argument(help="The task's name (tasks/NAME.yaml, the model name).")],
    data: Annotated[Path, typer.Option(help="A CSV or parquet file with every row.")],
    label: Annotated[str, typer.Option(help="The column to predict.")],
    time: Annotated[
        str | None,
        typer.Option(
            help="The column saying when each row happened (dates, or integers such as a "
            "year). Left out: a table without one, split by a hash of --key."
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="binary, multiclass or regression.")] = "binary",
    positive: Annotated[str | None, typer.Option(help="binary: the positive value.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="binary: label >= this is positive (numeric label).")
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(help="day | week | month | year | number (default: inferred)."),
    ] = None,
    exclude: Annotated[str | None, typer.Option(help="Columns to leave out: a,b,c.")] = None,
    key: Annotated[str | None, typer.Option(help="Columns unique per row: a,b.")] = None,
    min_test_rows: Annotated[
        int | None, typer.Option(help="Test window: at least this many rows (default: proposed).")
    ] = None,
    min_test_class_rows: Annotated[
        int | None,
        typer.Option(help="Test window: at least this many rows of each class (proposed)."),
    ] = None,
    transform: Annotated[
        str | None, typer.Option(help="regression: none | log1p (default: proposed).")
    ] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
    force: Annotated[bool, typer.Option(help="Overwrite an existing task file.")] = False,
) -> None:
    """Profile a data file and write tasks/NAME.yaml for you to review: its data, label,
    Great Expectations suite (inferred from the data), features and request."""
    import yaml

    from maas.config.task_spec import TASK_NAME
    from maas.pipeline.data.profile import TaskRequest, profile
    from maas.pipeline.data.test_window import MAX_TEST_SHARE

    if not re.match(TASK_NAME, name):
        raise ConfigError(f"task name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    if partition not in (None, "day", "week", "month", "year", "number"):
        raise ConfigError(f"--partition {partition!r}: day, week, month, year or number")
    if time is None and partition is not None:
        raise ConfigError("--partition is for a --time column; without one rows split by hash")
    if transform not in (None, "none", "log1p"):
        raise ConfigError(f"--transform {transform!r}: none or log1p")
    if positive is not None and threshold is not None:
        raise ConfigError("give --positive or --threshold, not both")
    target = params_file.parent / "tasks" / f"{name}.yaml"
    existing = task_files(params_file.parent)
    if name in existing and not force:
        raise ConfigError(f"task {name!r} exists ({existing[name]}); --force overwrites it")
    from maas.config.task_files import read_yaml

    shared = read_yaml(params_file, "parameters file")
    shared_train = shared.get("train") or {}
    request = TaskRequest(
        name=name,
        data=data,
        label=label,
        time=time,
        kind=kind,
        positive=positive,
        threshold=threshold,
        partition=partition,  # type: ignore[arg-type]  # checked against Frequency above
        exclude=_names(exclude),
        keys=_names(key),
        min_test_rows=min_test_rows,
        min_test_class_rows=min_test_class_rows,
        transform=transform,
        validation_fraction=float(shared_train.get("validation_fraction", 0.1)),
        seed=int(shared_train.get("seed", 42)),
        max_test_share=float((shared.get("data") or {}).get("max_test_share", MAX_TEST_SHARE)),
        shared_steps=(
            int(shared_train.get("batch_size", 1024)),
            int(shared_train.get("max_epochs", 8)),
            int(shared_train.get("patience", 4)),
        ),
        shared_embedding=str(
            ((shared.get("model") or {}).get("numeric_embeddings") or {}).get("kind", "none")
        ),
    )
    made = profile(request)
    header = (
        f"# Task {name}: made by `maas task init` on {dt.date.today()} from {data}.\n"
        "# Review it: the suite's bands and ranges come from the data as it is today.\n"
        "# Rows without a label are dropped (data.label.unlabeled): the label's not-null\n"
        "# check (validation.not_null) reports them as a warning and never blocks a run.\n"
    )
    split = made.task["data"].get("split")
    if split is not None:  # no time column: say how rows are split, in words
        import textwrap

        from maas.config.task_spec import SplitSpec
        from maas.pipeline.data.key_hash import describe

        said = f"data.split: {describe(SplitSpec.model_validate(split))}."
        header += "".join(f"# {line}\n" for line in textwrap.wrap(said, 92))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + yaml.safe_dump(made.task, sort_keys=False, width=100))
    params = Project(params_file).load(name)  # the written file must parse: a bug here, not yours
    out.print(f"wrote {target}")
    for note in made.notes:
        out.print(f"  - {note}")
    dvc_yaml = params_file.parent / "dvc.yaml"
    if dvc_yaml.is_file():  # the task's DVC stages, generated: no second file to edit
        from maas.pipeline.data.dvc_stages import add_task_stages

        stages = add_task_stages(params, dvc_yaml, target)
        out.print(f"wrote stages {', '.join(stages)} into {dvc_yaml} (dvc repro {stages[-1]})")
    out.print(f"next: maas run --task {name}")


@task_app.command("list")
@handled
def list_tasks(params_file: ParamsOption = DEFAULT_PARAMS, as_json: JsonOption = False) -> None:
    """Each task with its kind, label, registered model, champion and last run."""
    from maas.operate.tasks import task_row

    rows = [task_row(Project(params_file).load(name)) for name in task_files(params_file.parent)]
    if as_json:
        print(json.dumps([row.to_dict() for row in rows]))
        return
    from rich.table import Table

    table = Table("task", "kind", "label", "partition", "model", "champion", "last run")
    for row in rows:
        table.add_row(
            row.task,
            row.kind,
            row.label,
            row.partition,
            row.model,
            row.champion or "-",
            row.last_run or "-",
        )
    out.print(table)
