"""Plots of the test partitions, per kind of task, as CSV (DVC plots) and one PNG (MLflow):
binary, ROC, precision-recall and calibration curves; multiclass, the confusion matrix;
regression, predicted vs actual and the residuals."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_POINTS = 200  # rows per CSV curve (thinned so the files stay small)


def write_plots(
    labels: np.ndarray,
    preds: np.ndarray,
    plots_dir: Path,
    kind: str = "binary",
    classes: Sequence[str] = (),
) -> list[Path]:
    """The kind's tables (CSV) and figure (`curves.png`) in `plots_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    if kind == "regression":
        tables, draw = _regression(np.asarray(labels, dtype=float), np.asarray(preds, dtype=float))
    elif kind == "multiclass":
        tables, draw = _multiclass(np.asarray(labels).astype(int), np.asarray(preds), classes)
    else:
        tables, draw = _binary(np.asarray(labels).astype(int), np.asarray(preds))
    written = []
    for name, (header, rows) in tables.items():
        path = plots_dir / name
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows([_cell(v) for v in row] for row in rows)
        written.append(path)
    figure, axes = plt.subplots(1, len(draw), figsize=(4.4 * len(draw), 4), squeeze=False)
    for axis, paint in zip(axes[0], draw, strict=True):
        paint(axis)
    figure.tight_layout()
    png = plots_dir / "curves.png"
    figure.savefig(png, dpi=80)
    plt.close(figure)
    written.append(png)
    return written


def _cell(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float | np.floating) else str(value)


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int))


Tables = dict[str, tuple[list[str], Iterable[Sequence[Any]]]]


def _binary(y: np.ndarray, p: np.ndarray) -> tuple[Tables, list[Any]]:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    roc, pr = _thin(len(fpr)), _thin(len(recall))
    tables: Tables = {
        "roc.csv": (["fpr", "tpr"], zip(fpr[roc], tpr[roc], strict=True)),
        "precision_recall.csv": (
            ["recall", "precision"],
            zip(recall[pr], precision[pr], strict=True),
        ),
        "calibration.csv": (
            ["mean_predicted", "fraction_positive"],
            zip(mean_pred, frac_pos, strict=True),
        ),
    }

    def roc_plot(axis: Any) -> None:
        axis.plot(fpr, tpr)
        axis.plot([0, 1], [0, 1], ls="--", c="grey")
        axis.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")

    def pr_plot(axis: Any) -> None:
        axis.plot(recall, precision)
        axis.set(title="Precision-recall", xlabel="recall", ylabel="precision")

    def calibration_plot(axis: Any) -> None:
        axis.plot(mean_pred, frac_pos, marker="o")
        axis.plot([0, 1], [0, 1], ls="--", c="grey")
        axis.set(title="Calibration", xlabel="mean predicted", ylabel="fraction positive")

    return tables, [roc_plot, pr_plot, calibration_plot]


def _multiclass(
    y: np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> tuple[Tables, list[Any]]:
    from sklearn.metrics import confusion_matrix

    names = list(classes) or [str(i) for i in range(probs.shape[1])]
    matrix = confusion_matrix(y, probs.argmax(axis=1), labels=list(range(len(names))))
    rows = [
        (names[a], names[b], int(matrix[a, b]))
        for a in range(len(names))
        for b in range(len(names))
    ]
    tables: Tables = {"confusion.csv": (["actual", "predicted", "rows"], rows)}

    def confusion_plot(axis: Any) -> None:
        axis.imshow(matrix, cmap="Blues")
        axis.set(
            title="Confusion matrix",
            xlabel="predicted",
            ylabel="actual",
            xticks=range(len(names)),
            yticks=range(len(names)),
        )
        axis.set_xticklabels(names, rotation=45, ha="right")
        axis.set_yticklabels(names)
        for (a, b), count in np.ndenumerate(matrix):
            axis.text(b, a, str(count), ha="center", va="center", fontsize=8)

    return tables, [confusion_plot]


def _regression(y: np.ndarray, v: np.ndarray) -> tuple[Tables, list[Any]]:
    residuals = y - v
    sample = np.random.default_rng(0).permutation(len(y))[: MAX_POINTS * 5]
    counts, edges = np.histogram(residuals, bins=40)
    tables: Tables = {
        "predicted_vs_actual.csv": (
            ["actual", "predicted"],
            zip(y[sample], v[sample], strict=True),
        ),
        "residuals.csv": (
            ["residual", "rows"],
            zip((edges[:-1] + edges[1:]) / 2, counts.astype(int), strict=True),
        ),
    }

    def scatter(axis: Any) -> None:
        axis.scatter(y[sample], v[sample], s=4, alpha=0.5)
        low, high = float(min(y.min(), v.min())), float(max(y.max(), v.max()))
        axis.plot([low, high], [low, high], ls="--", c="grey")
        axis.set(title="Predicted vs actual", xlabel="actual", ylabel="predicted")

    def histogram(axis: Any) -> None:
        axis.hist(residuals, bins=40)
        axis.set(title="Residuals (actual - predicted)", xlabel="residual", ylabel="rows")

    return tables, [scatter, histogram]
