"""`maas rollout status|pause|resume|promote|abort`: a progressive rollout, for people
(maas.operate.rollout_control); the commands join `maas rollout` (maas.cli.rollout_shadow)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from maas.cli.common import JsonOption, Project, handled, out, with_project

ReasonOption = Annotated[str, typer.Option(help="Why (written to the audit trail and tags).")]


@handled
@with_project
def status(project: Project, as_json: JsonOption = False) -> None:
    """The rollout in progress: its state (`canary 25%`), step, weights and checks so far."""
    params = project.load()
    from maas.operate.rollout_control import rollout_status

    shown = rollout_status(params)
    model = params.registry.model_name
    if as_json:
        out.print_json(json.dumps({"model": model, "rollout": shown}))
        return
    if shown is None:
        strategy = params.deploy.rollout.strategy
        out.print(f"{model}: no rollout in progress (deploy.rollout.strategy: {strategy})")
        return
    weights = ", ".join(f"{version} {share}%" for version, share in shown["weights"].items())
    out.print(
        f"{model}: v{shown['candidate']} {shown['state']} beside v{shown['previous']} "
        f"(step {shown['step']} of {shown['steps']}, since {shown['step_started']}); "
        f"weights: {weights}"
    )
    for check in shown["checks"]:
        verdict = {True: "passed", False: "FAILED", None: "waiting"}[check["passed"]]
        out.print(f"  {check['name']}: {verdict}: {check['reason']}")


def _control(project: Project, action: str, reason: str = "") -> None:
    params = project.load()
    from maas.operate.rollout_control import control

    out.print(control(params, action, reason))  # type: ignore[arg-type]


@handled
@with_project
def pause(project: Project) -> None:
    """Hold the rollout at its step: no step passes, no check rolls it back, until resumed."""
    _control(project, "pause")


@handled
@with_project
def resume(project: Project) -> None:
    """Judge the rollout's step again from the next controller pass."""
    _control(project, "resume")


@handled
@with_project
def promote(project: Project, reason: ReasonOption = "") -> None:
    """Make the candidate the only serving version now, whatever steps are left."""
    _control(project, "promote", reason)


@handled
@with_project
def abort(project: Project, reason: ReasonOption = "") -> None:
    """Roll the candidate back now: the previous version serves alone and is champion again."""
    _control(project, "abort", reason)


def register(app: typer.Typer) -> None:
    for command in (status, pause, resume, promote, abort):
        app.command()(command)
