"""`fit` on a small synthetic tabular set, alone or data-parallel (run by test_distributed.py).

    python ddp_fit_script.py OUT_DIR                                  # one process
    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_fit_script.py OUT_DIR
    ... ddp_fit_script.py OUT_DIR KILL_EPOCH   # rank 0 dies at the end of epoch KILL_EPOCH

Every rank writes OUT_DIR/rank<r>.json (what it saw); `fit` checkpoints to a per-rank path
OUT_DIR/ckpt_rank<r>.pt, so the test can tell which ranks wrote one.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from maas.config import TrainParams
from maas.pipeline.training import distributed
from maas.pipeline.training.fit import TensorSet, fit, predict
from maas.pipeline.training.model import build_model_config

CARRIERS, HOURS, NUMERIC = 12, 5, 3
# The ground truth: a fixed effect per carrier (categorical) plus one numeric feature.
CARRIER_EFFECT = np.random.default_rng(1234).normal(0.0, 1.2, CARRIERS)

PARAMS = TrainParams(
    device="cpu",
    batch_size=128,
    learning_rate=0.01,
    max_epochs=8,
    patience=3,
    num_threads=1,
)


def synthetic(n: int, seed: int) -> TensorSet:
    rng = np.random.default_rng(seed)
    categorical = np.stack([rng.integers(0, CARRIERS, n), rng.integers(0, HOURS, n)], axis=1)
    numeric = rng.normal(size=(n, NUMERIC)).astype(np.float32)
    logit = CARRIER_EFFECT[categorical[:, 0]] + 1.5 * numeric[:, 0] - 0.3
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return TensorSet.from_numpy(categorical, numeric, labels.astype(np.float32))


class Killed(Exception):
    pass


def main(out: Path, kill_epoch: int | None = None) -> None:
    joined = distributed.init_from_env()
    rank, world = distributed.rank(), distributed.world()
    train, validation, test = synthetic(4001, 1), synthetic(1000, 2), synthetic(2000, 3)
    config = build_model_config([CARRIERS, HOURS], NUMERIC, [32, 16], 0.1, 4)
    callbacks: list[dict[str, float]] = []

    def on_epoch_end(metrics: dict[str, float]) -> None:
        callbacks.append(metrics)
        if metrics["epoch"] == kill_epoch:  # before this epoch's checkpoint is written
            raise Killed

    started = time.perf_counter()
    result = fit(
        config,
        PARAMS,
        train,
        validation,
        checkpoint_path=out / f"ckpt_rank{rank}.pt",
        on_epoch_end=on_epoch_end,
    )
    seconds = time.perf_counter() - started
    probs = predict(result.model, test).numpy()
    weights = b"".join(t.numpy().tobytes() for t in result.model.state_dict().values())
    report = {
        "rank": rank,
        "world": world,
        "fit_seconds": seconds,
        "test_roc_auc": float(roc_auc_score(test.labels.numpy(), probs)),
        "best_epoch": result.best_epoch,
        "resumed_from_epoch": result.resumed_from_epoch,
        "history": [
            {k: v for k, v in h.items() if k != "samples_per_second"} for h in result.history
        ],
        "callbacks": len(callbacks),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "model_type": type(result.model).__name__,
        "torch_threads": torch.get_num_threads(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report, indent=1))
    if joined:
        distributed.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
