"""Training: device choice, seeding, epochs over resident tensors, checkpoints, early stopping.

`fit` is also data-parallel: inside an initialized process group of N > 1 processes (started by
`torchrun`, see `maas.distributed`) it wraps the model in DistributedDataParallel. The global
batch stays `batch_size` (rounded up to a multiple of N) and each rank trains on its 1/N slice of
every global batch, so a step, the number of steps and the OneCycle schedule match the
single-process run. Validation runs on rank 0 and its metrics are broadcast, so every rank takes
the same early-stopping decision; only rank 0 writes checkpoints and calls `on_epoch_end`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from maas.config import TrainParams
from maas.config.kinds import SCORE
from maas.errors import TrainingError
from maas.pipeline.training import distributed
from maas.pipeline.training.augment import Augmentation
from maas.pipeline.training.budget import Estimate, batch_step, probe
from maas.pipeline.training.checkpoints import checkpoint_state, restore_checkpoint, save_checkpoint
from maas.pipeline.training.device import autocast, set_seed, training_device
from maas.pipeline.training.device import select_device as select_device
from maas.pipeline.training.imbalance import class_weights
from maas.pipeline.training.loss import head_loss
from maas.pipeline.training.model import Head, ModelConfig, build_network, serving_output

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


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
    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    device: str
    samples_per_second: float
    resumed_from_epoch: int | None = None
    stopped_early: bool = False
    estimated_seconds: float | None = None  # before the first epoch (training.budget)


def iterate_batches(
    n_rows: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> Iterator[torch.Tensor]:
    """Row indices of each step, in the random order drawn from `generator`.

    With `world` > 1 every rank draws the same permutation (same generator seed), drops its last
    `n_rows % world` rows so that the shards are equal, cuts it into global batches of
    `batch_size` rounded up to a multiple of `world` and takes its own equal slice of each: all
    ranks run the same number of steps (no hanging all-reduce) and each step covers one global
    batch, disjoint across ranks.
    """
    order = torch.randperm(n_rows, generator=generator).to(device)
    if world == 1:
        yield from torch.split(order, batch_size)
        return
    per_rank = -(-batch_size // world)
    for chunk in torch.split(order[: n_rows - n_rows % world], per_rank * world):
        yield chunk.view(world, -1)[rank]


def steps_per_epoch(n_rows: int, batch_size: int, world: int = 1) -> int:
    """How many batches `iterate_batches` yields (on every rank)."""
    global_batch = -(-batch_size // world) * world
    return -(-(n_rows - n_rows % world) // global_batch)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorSet,
    batch_size: int,
    generator: torch.Generator,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    rank: int = 0,
    world: int = 1,
    mixed_precision: bool = True,
    augment: Augmentation | None = None,
    head: str = "binary",
    regression_loss: str = "mse",
    class_weight: torch.Tensor | None = None,
) -> float:
    """One pass in random order; returns the mean training loss (over all ranks' rows)."""
    model.train()
    device = data.labels.device
    total = torch.zeros((), device=device)
    for index in iterate_batches(len(data), batch_size, generator, device, rank, world):
        categorical, numeric = data.categorical[index], data.numeric[index]
        if augment is not None:
            categorical, numeric = augment.apply(categorical, numeric, generator)
        with autocast(device, mixed_precision):
            logits = model(categorical, numeric)
        loss = head_loss(head, logits, data.labels[index], regression_loss, class_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach() * index.numel()
    if world > 1:
        distributed.all_reduce_sum(total)
    # One device sync per epoch, not per batch.
    return float(total.item()) / (len(data) - len(data) % world)


@torch.no_grad()
def predict(
    model: nn.Module, data: TensorSet, batch_size: int = 65536, mixed_precision: bool = True
) -> torch.Tensor:
    """The serving output for each row (maas.pipeline.training.model.serving_output)."""
    model.eval()
    config: ModelConfig = model.config  # type: ignore[assignment]
    outputs = []
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        with autocast(data.labels.device, mixed_precision):
            out = model(data.categorical[start:stop], data.numeric[start:stop])
        outputs.append(serving_output(config, out))
    if outputs:
        return torch.cat(outputs)
    return torch.zeros((0, config.n_outputs) if config.head == "multiclass" else 0)


def evaluate_epoch(
    model: nn.Module, data: TensorSet, mixed_precision: bool = True, metric: str | None = None
) -> dict[str, float]:
    """Validation loss, the kind's score `val_<score>` (maas.config.kinds.SCORE) and, when
    another, `val_<metric>` (the gate's); bf16 autocast on CUDA only with `mixed_precision`.
    Regression labels are standardized: the loss is in standard deviations, as in training;
    the metrics are in the label's units (its transform undone, in float64)."""
    from maas.pipeline.evaluation.metrics import compute_metrics

    config: ModelConfig = model.config  # type: ignore[assignment]
    names = list(dict.fromkeys([SCORE[config.head], metric or SCORE[config.head]]))
    preds = predict(model, data, mixed_precision=mixed_precision)
    if not bool(torch.isfinite(preds).all()):  # diverged: nothing to keep (a tuning trial: pruned)
        return {"val_loss": float("nan")} | {f"val_{name}": float("nan") for name in names}
    labels = data.labels
    head = Head.of(config)
    if config.head == "regression":
        served = preds.double().cpu().numpy()  # log1p: a value at -1 has no log
        served = np.maximum(served, -1 + 1e-12) if head.transform == "log1p" else served
        scaled = torch.as_tensor(head.scale(served), dtype=torch.float32)
        loss = nn.functional.mse_loss(scaled.to(labels.device), labels).item()
    elif config.head == "multiclass":
        loss = nn.functional.nll_loss(preds.clamp_min(1e-7).log(), labels.long()).item()
    else:
        loss = nn.functional.binary_cross_entropy(preds.clamp(1e-7, 1 - 1e-7), labels).item()
    y, p = head.unscale(labels.cpu().numpy()), preds.cpu().numpy()
    try:
        values = compute_metrics(y, p, config.head)
    except ValueError:  # e.g. one class only in a tiny validation slice
        values = {}
    return {"val_loss": loss} | {f"val_{name}": values.get(name, float("nan")) for name in names}


def make_scheduler(
    optimizer: torch.optim.Optimizer, params: TrainParams, n_rows: int, world: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if params.lr_schedule != "onecycle":
        return None
    steps = steps_per_epoch(n_rows, params.batch_size, world)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.learning_rate, total_steps=steps * params.max_epochs
    )


def train_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    data: TensorSet,
    params: TrainParams,
    epoch: int,
    augment: Augmentation | None = None,
    class_weight: torch.Tensor | None = None,
) -> float:
    """Epoch `epoch` of `fit` on this rank's share; returns the mean training loss."""
    rank, world = distributed.rank(), distributed.world()
    # A generator per epoch makes the batch order independent of resuming.
    generator = torch.Generator().manual_seed(params.seed * 1000 + epoch)
    if world > 1:
        # Dropout: different masks per rank, and a resumed run draws the same ones.
        torch.manual_seed((params.seed * 1000 + epoch) * 1009 + rank)
    return train_one_epoch(
        net,
        optimizer,
        data,
        params.batch_size,
        generator,
        scheduler,
        rank=rank,
        world=world,
        mixed_precision=params.mixed_precision,
        augment=augment,
        head=net_config(net).head,
        regression_loss=params.regression_loss,
        class_weight=class_weight,
    )


def net_config(net: nn.Module) -> ModelConfig:
    """The config of the network, inside its DDP wrapper or not."""
    inner = net.module if isinstance(net, DistributedDataParallel) else net
    config: ModelConfig = inner.config  # type: ignore[assignment]
    return config


def selection_metric(
    params: TrainParams, config: ModelConfig, validation: TensorSet, metric: str | None = None
) -> str:
    """The validation metric that picks the epoch kept and stops training early: the gate's
    metric (`metric`, else the kind's score; `train.select_by: score`), or the loss when asked,
    or when the score is undefined on this validation slice (ROC AUC of one class)."""
    if params.select_by == "loss":
        return "val_loss"
    if config.head == "binary" and validation.labels.unique().numel() < 2:
        log.warning("the validation slice holds one class: epochs are chosen by validation loss")
        return "val_loss"
    return f"val_{metric or SCORE[config.head]}"


def fit(
    config: ModelConfig,
    params: TrainParams,
    train: TensorSet,
    validation: TensorSet,
    *,
    checkpoint_path: Path | None = None,
    on_epoch_end: EpochCallback | None = None,
    augment: Augmentation | None = None,
    metric: str | None = None,
    on_estimate: Callable[[Estimate, str], None] | None = None,
) -> TrainResult:
    """Train with early stopping on the validation metric `selection_metric` names (`metric`,
    the gate's; default the kind's score) and keep its best epoch; resume from
    `checkpoint_path` if present. `augment`: training batches made to look like requests the
    data rarely holds. Uneven classes weigh the loss (`train.class_weights`).

    Data-parallel (DDP) when a process group of more than one process is initialized; the
    returned model is the plain network (not its DDP wrapper), on the CPU, the same on every rank.
    """
    rank, world = distributed.rank(), distributed.world()
    device = training_device(params.device, world)
    if len(train) < world:
        raise TrainingError(f"{len(train)} training rows cannot be split over {world} processes")
    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    set_seed(params.seed)
    model = build_network(config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    train_d = train.to(device)
    val_d = validation.to(device) if rank == 0 else validation  # only rank 0 validates
    rows_per_epoch = len(train_d) - len(train_d) % world
    scheduler = make_scheduler(optimizer, params, len(train_d), world)
    monitor = selection_metric(params, config, validation, metric)
    gate_score = metric or SCORE[config.head]
    weight = (
        class_weights(train.labels.numpy(), config.n_outputs, params.class_weights, gate_score)
        if config.head == "multiclass"
        else None
    )
    progress = restore_checkpoint(checkpoint_path, model, optimizer, scheduler, monitor)
    # Constructing DDP broadcasts rank 0's weights; gradients are averaged in backward.
    net: nn.Module = model
    if world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    start_epoch = (progress.resumed_from or 0) + 1
    estimate = None
    trains = start_epoch <= params.max_epochs and progress.bad_epochs < params.patience
    if on_estimate is not None and rank == 0 and trains:  # said before the first epoch
        step = batch_step(config.head, train_d, -(-params.batch_size // world), params, weight)
        per_epoch = steps_per_epoch(len(train_d), params.batch_size, world)
        estimate = Estimate(probe(model, step), per_epoch, params.max_epochs - start_epoch + 1)
        if on_estimate is not None:
            on_estimate(estimate, device.type)
    trained_samples, train_seconds = 0, 0.0
    for epoch in range(start_epoch, params.max_epochs + 1):
        if progress.bad_epochs >= params.patience:
            break
        started = time.perf_counter()
        train_loss = train_epoch(net, optimizer, scheduler, train_d, params, epoch, augment, weight)
        elapsed = time.perf_counter() - started
        trained_samples += rows_per_epoch
        train_seconds += elapsed
        # Rank 0's metrics everywhere: every rank takes the same early-stopping decision.
        metrics = distributed.broadcast(
            {
                "epoch": float(epoch),
                "train_loss": train_loss,
                **evaluate_epoch(model, val_d, params.mixed_precision, metric),
                "samples_per_second": rows_per_epoch / elapsed,
            }
            if rank == 0
            else {}
        )
        progress.record(epoch, metrics, model)
        if rank != 0:
            continue
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        log.info("epoch %d %s", epoch, {k: round(v, 5) for k, v in metrics.items()})
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path, checkpoint_state(epoch, model, optimizer, scheduler, progress)
            )

    del net  # drops DDP's gradient hooks from the returned model's parameters
    model.load_state_dict(progress.best_state)
    model.eval()
    return TrainResult(
        model=model.cpu(),
        history=progress.history,
        best_epoch=progress.best_epoch,
        device=str(device),
        samples_per_second=trained_samples / train_seconds if train_seconds else 0.0,
        resumed_from_epoch=progress.resumed_from,
        stopped_early=progress.bad_epochs >= params.patience,
        estimated_seconds=estimate.seconds if estimate is not None else None,
    )
