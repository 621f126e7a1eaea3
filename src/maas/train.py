"""Training: device choice, seeding, epochs over resident tensors, checkpoints, early stopping."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maas.config import TrainParams
from maas.model import ModelConfig, TabularNet

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


class TrainingError(RuntimeError):
    """Training cannot run as configured (e.g. CUDA forced on a machine without it)."""


@dataclass(frozen=True)
class TensorSet:
    """One split held as tensors: categorical codes, numeric features, labels."""

    categorical: torch.Tensor
    numeric: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_numpy(cls, cat: np.ndarray, num: np.ndarray, y: np.ndarray) -> TensorSet:
        return cls(
            torch.as_tensor(cat, dtype=torch.long),
            torch.as_tensor(num, dtype=torch.float32),
            torch.as_tensor(y, dtype=torch.float32),
        )

    def to(self, device: torch.device) -> TensorSet:
        return TensorSet(
            self.categorical.to(device), self.numeric.to(device), self.labels.to(device)
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class TrainResult:
    model: TabularNet
    history: list[dict[str, float]]
    best_epoch: int
    device: str
    samples_per_second: float
    resumed_from_epoch: int | None = None
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def select_device(requested: str) -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a GPU is an error, not a silent CPU run."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device=cuda but no CUDA device is available; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision on CPU (CPU bf16 is slower for this size)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def iterate_batches(
    n_rows: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n_rows, generator=generator).to(device)
    yield from torch.split(order, batch_size)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorSet,
    batch_size: int,
    generator: torch.Generator,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One pass in random order; returns the mean training loss."""
    model.train()
    device = data.labels.device
    loss_fn = nn.BCEWithLogitsLoss()
    total = torch.zeros((), device=device)
    for index in iterate_batches(len(data), batch_size, generator, device):
        with autocast(device):
            logits = model(data.categorical[index], data.numeric[index])
        loss = loss_fn(logits.float(), data.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach() * index.numel()
    # One device sync per epoch, not per batch.
    return float(total.item()) / len(data)


@torch.no_grad()
def predict_proba(model: nn.Module, data: TensorSet, batch_size: int = 65536) -> torch.Tensor:
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        with autocast(data.labels.device):
            logits = model(data.categorical[start:stop], data.numeric[start:stop])
        outputs.append(torch.sigmoid(logits.float()))
    return torch.cat(outputs) if outputs else torch.zeros(0)


def evaluate_epoch(model: nn.Module, data: TensorSet) -> dict[str, float]:
    """Validation loss and ROC AUC."""
    from sklearn.metrics import roc_auc_score

    probs = predict_proba(model, data).clamp(1e-7, 1 - 1e-7)
    labels = data.labels
    loss = nn.functional.binary_cross_entropy(probs, labels).item()
    y, p = labels.cpu().numpy(), probs.cpu().numpy()
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {"val_loss": loss, "val_roc_auc": auc}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a run killed while writing keeps the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """weights_only=True: a checkpoint file can never run code when loaded."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or hostile file: start over rather than trust it
        log.warning("ignoring unreadable checkpoint %s: %s", path, error)
        return None


def fit(
    config: ModelConfig,
    params: TrainParams,
    train: TensorSet,
    validation: TensorSet,
    *,
    checkpoint_path: Path | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train with early stopping on validation loss; resume from `checkpoint_path` if present."""
    device = select_device(params.device)
    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    set_seed(params.seed)
    model = TabularNet(config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    train_d, val_d = train.to(device), validation.to(device)
    scheduler = None
    if params.lr_schedule == "onecycle":
        steps_per_epoch = -(-len(train_d) // params.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=params.learning_rate, total_steps=steps_per_epoch * params.max_epochs
        )

    start_epoch, best_loss, best_epoch, bad_epochs = 1, float("inf"), 0, 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    resumed_from = None
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler"):
            scheduler.load_state_dict(checkpoint["scheduler"])
        best_state = checkpoint["best_model"]
        best_loss, best_epoch = checkpoint["best_loss"], checkpoint["best_epoch"]
        bad_epochs, history = checkpoint["bad_epochs"], checkpoint["history"]
        torch.set_rng_state(checkpoint["rng_state"])
        resumed_from = int(checkpoint["epoch"])
        start_epoch = resumed_from + 1
        log.info("resuming from checkpoint %s after epoch %d", checkpoint_path, resumed_from)

    trained_samples, train_seconds = 0, 0.0
    stopped_early = bad_epochs >= params.patience
    for epoch in range(start_epoch, params.max_epochs + 1):
        if stopped_early:
            break
        # A generator per epoch makes the batch order independent of resuming.
        generator = torch.Generator().manual_seed(params.seed * 1000 + epoch)
        started = time.perf_counter()
        train_loss = train_one_epoch(
            model, optimizer, train_d, params.batch_size, generator, scheduler
        )
        elapsed = time.perf_counter() - started
        trained_samples += len(train_d)
        train_seconds += elapsed
        metrics = {
            "epoch": float(epoch),
            "train_loss": train_loss,
            **evaluate_epoch(model, val_d),
            "samples_per_second": len(train_d) / elapsed,
        }
        history.append(metrics)
        if metrics["val_loss"] < best_loss - 1e-6:
            best_loss, best_epoch, bad_epochs = metrics["val_loss"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stopped_early = bad_epochs >= params.patience
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        log.info("epoch %d %s", epoch, {k: round(v, 5) for k, v in metrics.items()})
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                    "best_model": best_state,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    "rng_state": torch.get_rng_state(),
                },
            )

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model.cpu(),
        history=history,
        best_epoch=best_epoch,
        device=str(device),
        samples_per_second=trained_samples / train_seconds if train_seconds else 0.0,
        resumed_from_epoch=resumed_from,
        stopped_early=stopped_early,
    )
