"""The parameters of a scheduled flow run are the owner's, not the Prefect API client's.

`maas schedule` serves deployments whose runs take `params_file`, `overrides` and `task` as
parameters, and whoever reaches the Prefect API may start a run with any parameters (e.g.
`overrides: ["registry.tracking_uri=http://elsewhere"]`, issue 27 item 4). So `maas schedule`
pins the project it was started with in its own environment (`pin`), which the runs it serves
inherit and no API call can change; a flow run in such a process accepts only exactly those
parameters (`load_run_params`): no free-form overrides, no other params file, no other task.
Outside `maas schedule` (a flow called by `maas run`), nothing is pinned and nothing changes.
On a work pool (`maas schedule --pool`) the pin lives where runs execute: `maas worker` pins
the project its host's owner started it with and sets it in each run's environment
(maas.operate.pinned_worker), so a Prefect API writer cannot change it either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maas.config.load import load_params
from maas.config.params import Params
from maas.errors import ConfigError

PIN_ENV = "MAAS_SCHEDULED_PROJECT"


@dataclass(frozen=True)
class ScheduledProject:
    """What `maas schedule` was started with: the runs it serves take nothing else."""

    params_file: str  # absolute
    overrides: tuple[str, ...]
    task: str | None


def pin(project: ScheduledProject) -> None:
    """Pin `project` for the flow runs this process serves (they inherit the environment)."""
    os.environ[PIN_ENV] = pin_value(project)


def pin_value(project: ScheduledProject) -> str:
    """`project` as the value of PIN_ENV (a work-pool worker sets it in each run's environment:
    maas.operate.pinned_worker)."""
    return json.dumps(
        {
            "params_file": project.params_file,
            "overrides": list(project.overrides),
            "task": project.task,
        }
    )


def pinned() -> ScheduledProject | None:
    raw = os.environ.get(PIN_ENV)
    if not raw:
        return None
    value = json.loads(raw)
    return ScheduledProject(value["params_file"], tuple(value["overrides"]), value["task"])


def refusal(
    project: ScheduledProject, params_file: str, overrides: Sequence[str], task: str | None
) -> str | None:
    """Why a run with these parameters is refused (None: they are the owner's)."""
    differences = []
    if str(Path(params_file).resolve()) != project.params_file:
        differences.append(f"params_file {params_file!r}")
    if tuple(overrides) != project.overrides:
        extra = sorted(set(overrides) - set(project.overrides))
        differences.append(f"overrides {extra or list(overrides)}")
    if task != project.task:
        differences.append(f"task {task!r}")
    if not differences:
        return None
    return (
        "a scheduled run takes the parameters `maas schedule` was started with, not the "
        f"caller's: refused {', '.join(differences)} (start runs without parameters)"
    )


def load_run_params(params_file: str, overrides: Sequence[str] | None, task: str | None) -> Params:
    """`load_params` for a flow run, refusing (ConfigError) parameters other than the pinned
    project's in a process that `maas schedule` runs."""
    project = pinned()
    if project is not None:
        reason = refusal(project, params_file, overrides or (), task)
        if reason is not None:
            raise ConfigError(reason)
    return load_params(params_file, list(overrides or ()), task)
