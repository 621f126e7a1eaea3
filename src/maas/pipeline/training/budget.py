"""What this host trains and how long it will take: a task's `model.cpu_kind` where no CUDA
device is present (flight-delay's TabM takes ~3 hours on 2 CPU cores, its MLP a minute), and
an estimate of the training time measured before the first epoch, so that a run on a slow host
says so up front instead of training for hours without a word."""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from maas.config import ModelParams, TrainParams
from maas.pipeline.training.device import autocast, select_device
from maas.pipeline.training.loss import head_loss

log = logging.getLogger(__name__)

PROBE_STEPS = 3  # optimizer steps timed (after one warm-up step) on a throwaway copy
SLOW_S = 30 * 60  # a CPU estimate above this names model.cpu_kind


def model_for_host(model: ModelParams, train: TrainParams) -> ModelParams:
    """`model` as this host trains it: kind `model.cpu_kind` where training runs on the CPU
    (train.device cpu, or auto without CUDA) and the task names one; else unchanged. The kind
    trained is recorded on the version (tag `model_kind`)."""
    if model.cpu_kind is None or model.cpu_kind == model.kind:
        return model
    if select_device(train.device).type != "cpu":
        return model
    return model.model_copy(update={"kind": model.cpu_kind})


def announced_model(model: ModelParams, train: TrainParams) -> ModelParams:
    """`model_for_host`, saying so where it replaces the kind (training's preparation)."""
    host = model_for_host(model, train)
    if host.kind != model.kind:
        log.info("train: no CUDA device: model.cpu_kind %s, not %s", host.kind, model.kind)
    return host


@dataclass(frozen=True)
class Estimate:
    step_seconds: float  # median of PROBE_STEPS optimizer steps
    steps_per_epoch: int
    epochs: int  # at most: early stopping may end sooner

    @property
    def seconds(self) -> float:
        return self.step_seconds * self.steps_per_epoch * self.epochs


def probe(
    network: torch.nn.Module, step: Callable[[torch.nn.Module, torch.optim.Optimizer], None]
) -> float:
    """Seconds per optimizer step: `step` (one batch forward, backward and update) run on a
    deep copy of `network` with its own optimizer, PROBE_STEPS times after a warm-up; the RNG
    states are restored, so the training that follows is what it would be without it."""
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    copied = copy.deepcopy(network)
    copied.train()
    optimizer = torch.optim.AdamW(copied.parameters())
    timings = []
    try:
        for _ in range(PROBE_STEPS + 1):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            began = time.perf_counter()
            step(copied, optimizer)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - began)
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
    return statistics.median(timings[1:])


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def say(estimate: Estimate, kind: str, device: str, cpu_kind: str | None) -> str:
    """The line a run logs before its first epoch."""
    text = (
        f"train: {kind} on {device}, about {duration_text(estimate.seconds)} for at most "
        f"{estimate.epochs} epochs of {estimate.steps_per_epoch} steps "
        f"({estimate.step_seconds * 1000:.1f} ms a step, {PROBE_STEPS} measured; early "
        "stopping may end it sooner)"
    )
    if device == "cpu" and estimate.seconds > SLOW_S and cpu_kind is None and kind != "mlp":
        text += (
            "; on hosts without a GPU, model.cpu_kind names a quicker model for the task (e.g. mlp)"
        )
    return text


def batch_step(
    head: str, data: Any, batch: int, params: TrainParams, weight: torch.Tensor | None
) -> Callable[[torch.nn.Module, torch.optim.Optimizer], None]:
    """One training step on the first `batch` rows of `data` (fit's TensorSet; a process's
    share of train.batch_size under torchrun), as `fit`'s epochs take them: what `probe`
    times."""
    device = data.labels.device
    rows = torch.arange(min(len(data), batch), device=device)

    def step(network: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with autocast(device, params.mixed_precision):
            logits = network(data.categorical[rows], data.numeric[rows])
        loss = head_loss(head, logits, data.labels[rows], params.regression_loss, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step
