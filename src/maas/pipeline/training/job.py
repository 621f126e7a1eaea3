"""One training job of the train stage: a model's network fitted on the prepared window with
its checkpoint, per-epoch logging, the progress bar and the estimate said up front."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maas.config import ModelParams, TrainParams
from maas.pipeline.evaluation.difference import metric_value
from maas.pipeline.training.budget import say
from maas.pipeline.training.candidates import Candidate
from maas.pipeline.training.fit import TrainResult, fit, predict
from maas.pipeline.training.model import Head, ModelConfig
from maas.pipeline.training.prepare import PreparedTraining, configure
from maas.pipeline.training.progress import epoch_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trained:
    result: TrainResult
    config: ModelConfig
    candidate: Candidate
    predictions: np.ndarray  # the served outputs of the validation rows (its best epoch)


def validation_labels(prepared: PreparedTraining) -> np.ndarray:
    """The validation rows' labels in the label's units (as `predictions` are)."""
    return Head.of(prepared.config).unscale(prepared.validation.labels.numpy())


def train_candidate(
    prepared: PreparedTraining,
    model: ModelParams,
    train: TrainParams,
    checkpoint: Path,
    *,
    metric: str,
    epoch_logger: Callable[[Mapping[str, float]], None] | None = None,
    show: bool = True,
    prefix: str = "",
) -> Trained:
    """Fit `model` (as this host trains it) with early stopping on `metric`, resuming from
    `checkpoint` if present; each epoch's metrics go to `epoch_logger`, named with `prefix`
    (a candidate's, where several are trained in one run)."""
    config, started = configure(prepared, model, train), time.perf_counter()
    with epoch_progress(train.max_epochs, show) as advance:

        def on_epoch_end(metrics: dict[str, float]) -> None:
            if epoch_logger is not None:
                epoch_logger({k if k == "epoch" else prefix + k: v for k, v in metrics.items()})
            advance(metrics)

        result = fit(
            config,
            train,
            prepared.train,
            prepared.validation,
            checkpoint_path=checkpoint,
            on_epoch_end=on_epoch_end,
            augment=prepared.augment,
            metric=metric,
            on_estimate=lambda estimate, device: log.info(
                say(estimate, config.kind, device, model.cpu_kind)
            ),
        )
    seconds = time.perf_counter() - started
    predictions = predict(result.model, prepared.validation, mixed_precision=False).numpy()
    try:  # in full precision, as the lead's bootstrap (the epoch's may be bf16 on CUDA)
        score = metric_value(metric, config.head, validation_labels(prepared), predictions)
    except ValueError:  # undefined on this slice (one class), or a diverged network's NaN
        score = float("nan")
    record = Candidate(config.numeric_embedding, result.best_epoch, score, seconds)
    return Trained(result, config, record, predictions)
