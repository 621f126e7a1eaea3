"""What `maas task list` shows: each task with its registered model, champion and last run."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from maas.config import Params
from maas.tracking.registry import CHAMPION, get_alias_version
from maas.tracking.store import connect

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class TaskRow:
    task: str
    kind: str
    label: str  # the label rule, e.g. arr_delay >= 15
    partition: str
    model: str
    champion: str | None
    last_run: str | None  # start time and status of the newest run of the task's experiment

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_run(client: MlflowClient, experiment: str) -> str | None:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], max_results=1, order_by=["attributes.start_time DESC"]
    )
    if not runs:
        return None
    info = runs[0].info
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.start_time / 1000))
    return f"{started} {info.status.lower()}"


def task_row(params: Params) -> TaskRow:
    client = connect(params.registry)
    champion = get_alias_version(client, params.registry.model_name, CHAMPION)
    return TaskRow(
        task=params.task,
        kind=params.data.label.kind,
        label=params.data.label.rule,
        partition=params.data.partitioning,
        model=params.registry.model_name,
        champion=str(champion.version) if champion is not None else None,
        last_run=last_run(client, params.registry.experiment),
    )
