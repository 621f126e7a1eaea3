"""The scoring section: what `maas schedule`'s scoring deployment does (docs/scoring.md) —
off by default; when on, every new partition of the task's raw data is scored by a version
into its own Parquet file as soon as the deployment finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from maas.config.base import Strict


class ScoringParams(Strict):
    schedule: bool = False  # `maas schedule` serves `score-<task>`, scoring new partitions
    interval_s: float = Field(3600, gt=0)  # how often it looks for new partitions
    version: str = Field("champion", min_length=1)  # a number or an alias, resolved per run
    output_dir: Path = Path("data/scored")  # <output_dir>/<task>/<partition>.parquet
    backend: Literal["local", "spark"] = "local"
    master: str | None = None  # backend spark: the master URL (null: local[2])
    log_predictions: bool = False  # the scored rows go to the prediction log (maas monitor)
