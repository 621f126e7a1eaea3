"""The `maas` command line: one Typer app, its commands split by area (pipeline, release,
operate). A command parses, calls one maas function and renders; errors are handled in
`maas.cli.common`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from maas.cli import keys, operate, pipeline, release, rollout, rollout_shadow, scoring, tasks

app = typer.Typer(
    help="maas: validate, train, register, promote and serve a model for each tabular task.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show every library's log lines and warnings here too."
        ),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(help="DEBUG | INFO | WARNING | ERROR (default INFO; MAAS_LOG_LEVEL)."),
    ] = None,
) -> None:
    """Log lines go to .maas/logs/maas.log (MAAS_LOG_FILE) at the chosen level; the terminal
    shows maas's own lines and errors, everything with --verbose (maas.cli.logs)."""
    if verbose:  # the environment carries the choice to the command and its children
        os.environ["MAAS_VERBOSE"] = "1"
    if log_level:
        os.environ["MAAS_LOG_LEVEL"] = log_level


app.add_typer(tasks.task_app, name="task")
app.command()(pipeline.run)
app.command()(pipeline.tune)
app.command()(pipeline.ingest)
app.command()(pipeline.monitor)
app.add_typer(pipeline.data_app, name="data")
app.add_typer(pipeline.stage_app, name="stage")
app.command()(operate.status)
app.command()(operate.promote)
app.command()(operate.approve)
app.add_typer(keys.key_app, name="key")
app.command()(release.package)
app.command()(scoring.score)
app.command("base-image")(release.base_image)
app.command()(release.serve)
app.command()(operate.watch)
app.command()(operate.rollback)
app.command()(operate.undeploy)
app.command()(operate.schedule)
app.command()(operate.worker)
app.command()(operate.ui)
rollout.register(rollout_shadow.rollout_app)  # status, pause, resume, promote, abort
app.add_typer(rollout_shadow.rollout_app, name="rollout")


def main() -> None:
    app(prog_name="maas")
