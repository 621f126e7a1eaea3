"""What differs between the kinds of task (binary, multiclass, regression), written once: the
metrics of each kind and their direction, the score a kind is validated and gated on by
default, and the concrete baseline behind each baseline family."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # as tables print it
    higher_is_better: bool
    kinds: tuple[str, ...]
    low: float | None = 0.0  # the values it can take (None: unbounded)
    high: float | None = 1.0


METRICS = {
    m.name: m
    for m in (
        Metric("roc_auc", "ROC AUC", True, ("binary",)),
        Metric("pr_auc", "PR AUC", True, ("binary",)),
        Metric("log_loss", "log loss", False, ("binary", "multiclass"), 0.0, None),
        Metric("brier", "Brier", False, ("binary",)),
        Metric("accuracy", "accuracy", True, ("binary", "multiclass")),
        Metric("macro_f1", "macro F1", True, ("multiclass",)),
        Metric("rmse", "RMSE", False, ("regression",), 0.0, None),
        Metric("mae", "MAE", False, ("regression",), 0.0, None),
        Metric("r2", "R²", True, ("regression",), None, 1.0),
    )
}
# The score of each kind: validation (early epochs, tuning) and, unless promotion.metric says
# otherwise, the gate. Each is higher-is-better and scale-free, so the shared tolerances of
# params.yaml (baseline_tolerance, max_regression) read the same for every task.
SCORE = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "r2"}
# Baseline families: `prior` (the training label's mean or class frequencies), a linear model
# (logistic regression for classes, linear regression for values), gradient boosting.
LINEAR = {
    "binary": "logistic_regression",
    "multiclass": "logistic_regression",
    "regression": "linear_regression",
}


def metric_names(kind: str) -> tuple[str, ...]:
    """The test metrics of a kind, in the order reports and tables show them."""
    return tuple(name for name, m in METRICS.items() if kind in m.kinds)


def gate_metric(kind: str, configured: str | None) -> Metric:
    """The metric the gate decides on: promotion.metric when set (it must be one of the
    kind's), else the kind's score."""
    name = configured or SCORE[kind]
    metric = METRICS.get(name)
    if metric is None or kind not in metric.kinds:
        raise ValueError(
            f"promotion.metric {name!r} is not a metric of {kind} tasks; choose one of "
            f"{', '.join(metric_names(kind))}"
        )
    return metric


def baseline_name(name: str, kind: str) -> str:
    """The concrete baseline of a family for this kind (the linear family: logistic regression
    for classes, linear regression for values), so one shared list serves every task."""
    return LINEAR[kind] if name in LINEAR.values() else name


def baseline_names(names: Sequence[str], kind: str) -> list[str]:
    return list(dict.fromkeys(baseline_name(name, kind) for name in names))


def better(metric: Metric, value: float, other: float) -> float:
    """How much better `value` is than `other` (positive: better), in the metric's units."""
    return value - other if metric.higher_is_better else other - value
