"""The hand-off between stages in `data.processed_dir`: the labeled train and test windows and
their lineage (which partitions, their sha256, the validation status). DVC tracks the folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import DataParams
from maas.errors import MissingStageOutput, RunBusy
from maas.files import locked

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"


@contextlib.contextmanager
def run_lock(data: DataParams, models_dir: Path, wait: bool = True) -> Iterator[None]:
    """One pipeline run at a time on these working files (the processed windows, the models
    folder, the metrics they produce): a nightly run and a manual `maas run` take turns instead
    of registering one run's weights under the other's verdict. The lock lives in the temp
    folder, named by the files' absolute paths (two projects never wait for each other)."""
    paths = f"{data.processed_dir.resolve()}|{models_dir.resolve()}"
    key = hashlib.sha256(paths.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"maas-run-{key}.lock"
    held = contextlib.ExitStack()
    try:
        held.enter_context(locked(path, wait=False))
    except BlockingIOError:
        if not wait:
            raise RunBusy(f"another pipeline run works on {data.processed_dir}") from None
        log.info("waiting for another pipeline run on %s to finish", data.processed_dir)
        held.enter_context(locked(path))
    with held:
        yield


def clear_windows(data: DataParams) -> None:
    """A blocked run must never leave the previous run's windows for the next stage to use."""
    for name in (TRAIN_FILE, TEST_FILE, LINEAGE_FILE):
        (data.processed_dir / name).unlink(missing_ok=True)


def write_windows(
    data: DataParams, train: pd.DataFrame, test: pd.DataFrame, lineage: dict[str, Any]
) -> None:
    data.processed_dir.mkdir(parents=True, exist_ok=True)
    train.to_parquet(data.processed_dir / TRAIN_FILE, index=False)
    test.to_parquet(data.processed_dir / TEST_FILE, index=False)
    (data.processed_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=1))


def read_lineage(data: DataParams) -> dict[str, Any]:
    path = data.processed_dir / LINEAGE_FILE
    if not path.is_file():
        raise MissingStageOutput(f"{path} not found: run the validate stage first")
    return dict(json.loads(path.read_text()))


def read_window(data: DataParams, filename: str) -> pd.DataFrame:
    path = data.processed_dir / filename
    if not path.is_file():
        raise MissingStageOutput(f"{path} not found: run the validate stage first")
    return pd.read_parquet(path)
