"""Training checkpoints: what an epoch leaves behind so a killed run resumes where it stopped.

Saved atomically with torch.save and read back with `weights_only=True` (a checkpoint file can
never run code); under DDP rank 0 reads and writes, and every rank gets the same content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maas.config.kinds import METRICS
from maas.files import replacing
from maas.pipeline.training import distributed

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands after an epoch: what a checkpoint saves and a resume restores.
    `monitor` is the validation metric that picks the epoch kept (`val_loss` and `val_rmse`:
    lower is better; a score such as `val_roc_auc`: higher is better)."""

    best_state: dict[str, torch.Tensor]
    monitor: str = "val_loss"
    best_value: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None

    def record(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """Keep the epoch's metrics; remember the weights when the monitored metric improved
        (a NaN never improves: a diverged epoch is not kept)."""
        self.history.append(metrics)
        value = metrics[self.monitor]
        sign = 1.0 if lower_is_better(self.monitor) else -1.0  # compare as "lower is better"
        if value == value and (
            self.best_value != self.best_value or sign * value < sign * self.best_value - 1e-6
        ):
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1


def lower_is_better(monitor: str) -> bool:
    """`val_loss` and a lower-is-better metric (`val_rmse`, `val_log_loss`)."""
    metric = METRICS.get(monitor.removeprefix("val_"))
    return monitor == "val_loss" or (metric is not None and not metric.higher_is_better)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a run killed while writing keeps the previous checkpoint."""
    with replacing(path) as partial:
        torch.save(state, partial)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """weights_only=True: a checkpoint file can never run code when loaded."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or hostile file: start over rather than trust it
        log.warning("ignoring unreadable checkpoint %s: %s", path, error)
        return None


def restore_checkpoint(
    path: Path | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    monitor: str = "val_loss",
) -> Progress:
    """The progress saved at `path` (model, optimizer and scheduler restored in place), or a
    fresh start. Rank 0 reads the file and every rank gets its content."""
    rank, world = distributed.rank(), distributed.world()
    progress = Progress({k: v.detach().clone() for k, v in model.state_dict().items()}, monitor)
    checkpoint = load_checkpoint(path) if path and rank == 0 else None
    if world > 1:
        checkpoint = distributed.broadcast(checkpoint)  # rank 0's file, on every rank
    if checkpoint is not None and checkpoint.get("world_size", 1) != world:
        log.warning(
            "ignoring checkpoint %s: written by %s process(es), this run has %d",
            path,
            checkpoint.get("world_size", 1),
            world,
        )
        checkpoint = None
    if checkpoint is not None and checkpoint.get("monitor") != monitor:
        log.warning(
            "ignoring checkpoint %s: it chose epochs by %s, this run by %s",
            path,
            checkpoint.get("monitor"),
            monitor,
        )
        checkpoint = None
    if checkpoint is None:
        return progress
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and checkpoint.get("scheduler"):
        scheduler.load_state_dict(checkpoint["scheduler"])
    progress.best_state = checkpoint["best_model"]
    progress.best_value, progress.best_epoch = checkpoint["best_value"], checkpoint["best_epoch"]
    progress.bad_epochs, progress.history = checkpoint["bad_epochs"], checkpoint["history"]
    torch.set_rng_state(checkpoint["rng_state"])
    if checkpoint.get("cuda_rng_state") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng_state"])
    progress.resumed_from = int(checkpoint["epoch"])
    if rank == 0:
        log.info("resuming from checkpoint %s after epoch %d", path, progress.resumed_from)
    return progress


def checkpoint_state(
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    progress: Progress,
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "best_model": progress.best_state,
        "monitor": progress.monitor,
        "best_value": progress.best_value,
        "best_epoch": progress.best_epoch,
        "bad_epochs": progress.bad_epochs,
        "history": progress.history,
        "rng_state": torch.get_rng_state(),
        # CUDA draws (dropout on the GPU) come from the devices' own generators
        "cuda_rng_state": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "world_size": distributed.world(),
    }
