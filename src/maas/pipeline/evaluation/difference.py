"""How much better one model is than another on the same task's metric, with a bootstrap
confidence interval (scipy, percentile, seeded resamples): paired when both scored the same
rows (a shadow replay, the validation slice of two training candidates), else two independent
samples (live traffic split between versions). A bootstrap because the gate metric is often
not a proportion (ROC AUC, macro F1, R², RMSE): no closed-form test fits all of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maas.config.kinds import Metric, better

RESAMPLES = 500  # the bootstrap's: a few seconds of sklearn calls per check


@dataclass(frozen=True)
class Difference:
    """The gate metric of both versions and the candidate's drop (positive: worse, in the
    metric's units) with its confidence interval [low, high] (level 1 - 2 alpha: each bound
    one-sided at alpha)."""

    metric: str
    champion: float
    candidate: float
    drop: float
    low: float
    high: float
    champion_rows: int
    candidate_rows: int

    def numbers(self) -> dict[str, float]:
        return {
            f"champion_{self.metric}": self.champion,
            f"candidate_{self.metric}": self.candidate,
            "drop": self.drop,
            "drop_low": self.low,
            "drop_high": self.high,
            "champion_rows": float(self.champion_rows),
            "candidate_rows": float(self.candidate_rows),
        }


def metric_value(name: str, kind: str, labels: np.ndarray, preds: np.ndarray) -> float:
    """One metric, as `maas.pipeline.evaluation.metrics.compute_metrics` defines it (a test
    holds them equal): that function computes all of a kind's metrics, ten times the cost of
    one inside a bootstrap. ValueError where it is undefined (one class only)."""
    from sklearn import metrics

    if kind == "regression":
        y, v = np.asarray(labels, np.float64), np.asarray(preds, np.float64)
        if len(y) < 2:
            raise ValueError("two rows or more are needed")
        regression: dict[str, Callable[[], float]] = {
            "rmse": lambda: float(np.sqrt(metrics.mean_squared_error(y, v))),
            "mae": lambda: float(metrics.mean_absolute_error(y, v)),
            "r2": lambda: float(metrics.r2_score(y, v)),
        }
        return regression[name]()
    y = np.asarray(labels).astype(int)
    if kind == "multiclass":
        p = np.clip(np.asarray(preds, np.float64), 1e-7, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
        predicted = np.asarray(preds).argmax(axis=1)
        multiclass: dict[str, Callable[[], float]] = {
            "log_loss": lambda: float(metrics.log_loss(y, p, labels=list(range(p.shape[1])))),
            "accuracy": lambda: float(metrics.accuracy_score(y, predicted)),
            "macro_f1": lambda: float(
                metrics.f1_score(y, predicted, average="macro", zero_division=0)
            ),
        }
        return multiclass[name]()
    p = np.clip(np.asarray(preds, np.float64), 1e-7, 1 - 1e-7)
    if len(np.unique(y)) < 2:
        raise ValueError("rows of both classes are needed")
    binary: dict[str, Callable[[], float]] = {
        "roc_auc": lambda: float(metrics.roc_auc_score(y, p)),
        "pr_auc": lambda: float(metrics.average_precision_score(y, p)),
        "log_loss": lambda: float(metrics.log_loss(y, p, labels=[0, 1])),
        "brier": lambda: float(metrics.brier_score_loss(y, p)),
        "accuracy": lambda: float(metrics.accuracy_score(y, p >= 0.5)),
    }
    return binary[name]()


def quality_drop(
    metric: Metric,
    kind: str,
    champion: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    *,
    paired: bool,
    alpha: float,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Difference:
    """The candidate's drop of `metric` against the champion's, each a (labels, predictions)
    pair. `paired`: both scored the same rows (the shadow replay: rows are resampled together);
    else two independent samples (live traffic split between the versions)."""
    from scipy.stats import bootstrap

    def value(sample: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None = None) -> float:
        labels, preds = sample
        if rows is not None:
            labels, preds = labels[rows], preds[rows]
        return metric_value(metric.name, kind, labels, preds)

    def drop(*rows: np.ndarray) -> float:
        first = rows[0].astype(int)
        second = first if paired else rows[1].astype(int)
        try:
            return better(metric, value(champion, first), value(candidate, second))
        except ValueError:  # a resample of one class: left out of the interval
            return float("nan")

    base_champion, base_candidate = value(champion), value(candidate)
    data = (
        (np.arange(len(champion[0]), dtype=float),)
        if paired
        else (np.arange(len(champion[0]), dtype=float), np.arange(len(candidate[0]), dtype=float))
    )
    found = bootstrap(
        data,
        drop,
        n_resamples=resamples,
        vectorized=False,
        paired=paired,
        confidence_level=1 - 2 * alpha,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = found.confidence_interval
    return Difference(
        metric.name,
        base_champion,
        base_candidate,
        better(metric, base_champion, base_candidate),
        float(interval.low),
        float(interval.high),
        len(champion[0]),
        len(candidate[0]),
    )
