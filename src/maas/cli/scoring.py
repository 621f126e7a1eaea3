"""`maas score`: a registered version over a table, into Parquet (maas.scoring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maas.cli.common import JsonOption, Project, handled, out, with_project
from maas.tracking.registry import CHAMPION


@handled
@with_project
def score(
    project: Project,
    input_uri: Annotated[
        str,
        typer.Option(
            "--input",
            help="A Parquet or CSV file, a folder of them, or a glob; or such a URI "
            "(s3://bucket/prefix/, read by fsspec: pip install s3fs; credentials by "
            "environment, e.g. AWS_ACCESS_KEY_ID).",
        ),
    ],
    output: Annotated[Path, typer.Option(help="The Parquet file to write.")],
    version: Annotated[str, typer.Option(help="Version number or alias.")] = CHAMPION,
    columns: Annotated[
        str, typer.Option(help="More input columns to pass through, comma-separated.")
    ] = "",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: the cores).", min=1)
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    backend: Annotated[
        str, typer.Option(help="local (worker processes) or spark (a Parquet folder).")
    ] = "local",
    master: Annotated[
        str | None,
        typer.Option(help="--backend spark: the Spark master URL (default local[2])."),
    ] = None,
    log_predictions: Annotated[
        bool,
        typer.Option(
            help="Also append the scored rows to the task's prediction log, as served ones "
            "(maas monitor then covers batch use)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Score every row of a table with one version, by its own recorded serving code: the
    task's key columns, the version's outputs, `unknown_inputs`, `model_version`. A killed job
    started again resumes; rows the service would refuse go to <output>.errors.parquet.
    --backend spark runs the same scoring on Spark (pip install 'maas[spark]')."""
    import json
    import sys

    from maas.scoring.local import score_table

    params = project.load()
    bar = None
    if sys.stderr.isatty() and not as_json:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        job = bar.add_task("scoring", total=None)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(job, completed=done, total=total)

    try:
        summary = score_table(
            params,
            version=version,
            input_uri=input_uri,
            output=output,
            columns=tuple(c.strip() for c in columns.split(",") if c.strip()),
            overwrite=overwrite,
            workers=workers,
            progress=progress,
            backend=backend,
            master=master,
            log_predictions=log_predictions,
        )
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
        return
    notes = f"; {summary.errors} refused -> {summary.errors_file}" if summary.errors else ""
    if summary.logged:
        notes += f"; {summary.logged} rows logged for maas monitor"
    out.print(
        f"{summary.model} v{summary.version}: {summary.rows} rows scored in "
        f"{summary.seconds:.1f} s ({summary.records_per_s:,.0f} records/s) -> "
        f"{summary.output}{notes}"
    )
