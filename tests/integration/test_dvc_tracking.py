"""`maas ingest` records the raw folder with `dvc add`, except a folder a dvc.yaml stage writes
(the hotel-rates task's ingest is a stage): a real DVC repository in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from maas.pipeline.data.dvc import track_raw_data

pytestmark = pytest.mark.integration


def test_a_stage_output_is_left_to_dvc_and_an_input_is_added(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))  # the venv's, PATH or not
    subprocess.run(
        [dvc, "init", "-q"], cwd=tmp_path, check=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"}
    )
    stage = {"cmd": "maas ingest --task hotel-rates", "outs": ["data/hotel-rates/raw"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"ingest-hotel-rates": stage}}))
    for folder in ("data/raw", "data/hotel-rates/raw"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "2013-01.csv").write_text("a\n1\n")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        track_raw_data(Path("data/hotel-rates/raw"))  # before: "overlaps with an output"
        track_raw_data(Path("data/raw"))
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "data" / "hotel-rates" / "raw.dvc").exists()
    assert "nfiles: 1" in (tmp_path / "data" / "raw.dvc").read_text()
