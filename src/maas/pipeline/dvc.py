"""DVC helpers: the raw partitions are a `dvc add`ed input, not a stage output."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def track_raw_data(raw_dir: Path) -> None:
    """`dvc add raw_dir` so data/raw.dvc records exactly the partitions present."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        repo.add([str(raw_dir)])
    log.info("dvc: %s.dvc updated; commit it to version this data", raw_dir)
