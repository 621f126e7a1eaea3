"""Classification that respects uneven classes: the loss's class weights and the decision rule
(offsets on the class logits) chosen on the validation slice for the metric the gate judges.

A 3-class table whose majority holds 56% of the rows collapsed to the majority class under a
plain cross-entropy and an argmax (issue 28): accuracy barely above the prior's, macro F1 far
below logistic regression's. Balanced weights make every class count as much in the loss, and
the offsets move the argmax where the validation slice says the gate's metric is best; the
offsets are part of the model (`ModelConfig.class_bias`, inside the ONNX graph), so evaluation,
the champion's re-scoring and the service all apply the same rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from maas.pipeline.training.model import ModelConfig

# classes this uneven (largest count over smallest) are weighted under `class_weights: auto`
UNEVEN = 1.5
# metrics a decision rule can raise: those of the argmax (others read the probabilities)
DECIDED = ("macro_f1", "accuracy")
OFFSETS = np.linspace(-2.0, 2.0, 21)  # the log-odds offsets tried per class
ROUNDS = 3


def class_weights(
    labels: np.ndarray, n_classes: int, mode: str, metric: str
) -> torch.Tensor | None:
    """Weights of the multiclass loss, n / (classes * count) clipped to [0.05, 20], or None.
    `auto`: balanced when the gate judges a class-balanced metric (macro F1) and the classes
    are uneven; `balanced` always; `none` never."""
    if mode == "none" or n_classes < 2:
        return None
    counts = np.bincount(np.asarray(labels).astype(int), minlength=n_classes).astype(float)
    present = counts[counts > 0]
    uneven = len(present) > 1 and present.max() / present.min() > UNEVEN
    if mode == "auto" and not (metric == "macro_f1" and uneven):
        return None
    weights = counts.sum() / (n_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(np.clip(weights, 0.05, 20.0), dtype=torch.float32)


def _score(labels: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    from sklearn.metrics import f1_score

    if metric == "accuracy":
        return float(np.mean(predicted == labels))
    return float(f1_score(labels, predicted, average="macro", zero_division=0))


def choose_class_bias(probabilities: np.ndarray, labels: np.ndarray, metric: str) -> list[float]:
    """Offsets on the log class probabilities whose argmax scores best on these (validation)
    rows for `metric`, by coordinate ascent from zero; [] when the metric does not read the
    argmax or no offset beats the plain argmax (a tie keeps the plain argmax)."""
    if metric not in DECIDED or probabilities.ndim != 2 or len(labels) == 0:
        return []
    y = np.asarray(labels).astype(int)
    logp = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))
    bias = np.zeros(logp.shape[1])
    plain = best = _score(y, logp.argmax(axis=1), metric)
    for _ in range(ROUNDS):
        improved = False
        for k in range(len(bias)):
            for offset in OFFSETS:
                trial = bias.copy()
                trial[k] = offset
                value = _score(y, (logp + trial).argmax(axis=1), metric)
                if value > best + 1e-9:
                    best, bias, improved = value, trial, True
        if not improved:
            break
    if best <= plain:
        return []
    return [float(b - bias.mean()) for b in bias]


def decide_on_validation(
    model: nn.Module, probabilities: np.ndarray, labels: np.ndarray, metric: str
) -> list[float]:
    """Choose the multiclass decision rule from the network's validation `probabilities`
    (without a rule) for `metric` and put it into the network's config, so that the saved
    config and the exported graph carry it; returns the offsets ([] for other kinds, or when
    the plain argmax is as good)."""
    config: ModelConfig = model.config  # type: ignore[assignment]
    if config.head != "multiclass" or len(labels) == 0:
        return []
    bias = choose_class_bias(probabilities, labels, metric)
    model.config = replace(config, class_bias=bias)  # type: ignore[assignment]
    return bias
