"""Which of a task's partitions the scheduled scoring job (`scoring.schedule`) has still to
score: each partition in `data.raw_dir` is scored into `<scoring.output_dir>/<task>/<name>.parquet`;
one without that output, or changed since it was written, is due."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maas.config import Params
from maas.pipeline.data.partitions import task_partitions


@dataclass(frozen=True)
class DuePartition:
    name: str
    input: Path
    output: Path
    rescore: bool  # an output exists but is older than the partition: replaced


def scored_path(params: Params, name: str) -> Path:
    return params.scoring.output_dir / params.task / f"{name}.parquet"


def due_partitions(params: Params) -> list[DuePartition]:
    """The partitions without an up-to-date scored output, oldest first."""
    due = []
    for partition in task_partitions(params.data):
        output = scored_path(params, partition.name)
        if output.exists() and output.stat().st_mtime_ns >= partition.path.stat().st_mtime_ns:
            continue
        due.append(DuePartition(partition.name, partition.path, output, output.exists()))
    return due
