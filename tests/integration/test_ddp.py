"""Data-parallel `fit`: real `torchrun` launches of 2 Gloo processes on the CPU (no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("ddp_fit_script.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]


def launch(
    out: Path, nproc: int, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    prefix = [*TORCHRUN, str(nproc)] if nproc > 1 else [sys.executable]
    done = subprocess.run(
        [*prefix, str(SCRIPT), str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def report(out: Path, rank: int) -> dict[str, Any]:
    return dict(json.loads((out / f"rank{rank}.json").read_text()))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    launch(out, 2)
    return out


def test_two_processes_learn_like_one(ddp_run: Path, tmp_path: Path) -> None:
    launch(tmp_path, 1)
    single = report(tmp_path, 0)
    rank0, rank1 = report(ddp_run, 0), report(ddp_run, 1)

    assert single["world"] == 1 and rank0["world"] == rank1["world"] == 2
    assert single["test_roc_auc"] > 0.7 and rank0["test_roc_auc"] > 0.7
    assert abs(rank0["test_roc_auc"] - single["test_roc_auc"]) < 0.02
    # Both ranks end with the same plain TabularNet and the same (broadcast) history.
    assert rank0["model_type"] == rank1["model_type"] == "TabularNet"
    assert rank0["weights_sha256"] == rank1["weights_sha256"]
    assert rank0["history"] == rank1["history"]
    # Only rank 0 called on_epoch_end and wrote a checkpoint.
    assert rank0["callbacks"] == len(rank0["history"]) > 0
    assert rank1["callbacks"] == 0
    assert (ddp_run / "ckpt_rank0.pt").is_file()
    assert not (ddp_run / "ckpt_rank1.pt").exists()
    assert torch.load(ddp_run / "ckpt_rank0.pt", weights_only=True)["world_size"] == 2


def test_killed_ddp_run_resumes_to_the_same_model(ddp_run: Path, tmp_path: Path) -> None:
    killed = launch(tmp_path, 2, "3", check=False)
    assert killed.returncode != 0
    assert torch.load(tmp_path / "ckpt_rank0.pt", weights_only=True)["epoch"] == 2
    launch(tmp_path, 2)
    uninterrupted, rank0, rank1 = report(ddp_run, 0), report(tmp_path, 0), report(tmp_path, 1)
    assert rank0["resumed_from_epoch"] == rank1["resumed_from_epoch"] == 2
    assert rank0["history"] == rank1["history"] == uninterrupted["history"]
    assert rank0["weights_sha256"] == rank1["weights_sha256"] == uninterrupted["weights_sha256"]
