"""DVC helpers: the raw partitions are a `dvc add`ed input, not a stage output."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def track_raw_data(raw_dir: Path) -> None:
    """`dvc add raw_dir` so data/raw.dvc records exactly the partitions present; unless the
    folder is the output of a stage in dvc.yaml (a task whose ingest is a DVC stage, like
    hotel-rates): DVC records that one when `dvc repro` runs the stage."""
    from dvc.repo import Repo

    target = raw_dir.resolve()
    with Repo(".") as repo:
        for stage in repo.index.stages:
            if stage.cmd and any(Path(out.fs_path).resolve() == target for out in stage.outs):
                log.info(
                    "dvc: %s is the output of stage %s: `dvc repro %s` records it",
                    raw_dir,
                    stage.addressing,
                    stage.addressing,
                )
                return
        repo.add([str(raw_dir)])
    log.info("dvc: %s.dvc updated; commit it to version this data", raw_dir)
