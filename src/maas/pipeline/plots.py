"""Curves of the test month: ROC, precision-recall, calibration (CSV for DVC, PNG for MLflow)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_plots(labels: np.ndarray, probs: np.ndarray, plots_dir: Path) -> list[Path]:
    """ROC, PR and calibration curves as CSV (DVC plots) and PNG (MLflow artifacts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    plots_dir.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(labels, probs)
    precision, recall, _ = precision_recall_curve(labels, probs)
    frac_pos, mean_pred = calibration_curve(labels, probs, n_bins=10, strategy="quantile")
    # Thin the curves so the CSVs stay small.
    roc_idx = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    pr_idx = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 200)).astype(int))
    tables = {
        "roc.csv": (["fpr", "tpr"], zip(fpr[roc_idx], tpr[roc_idx], strict=True)),
        "precision_recall.csv": (
            ["recall", "precision"],
            zip(recall[pr_idx], precision[pr_idx], strict=True),
        ),
        "calibration.csv": (
            ["mean_predicted", "fraction_delayed"],
            zip(mean_pred, frac_pos, strict=True),
        ),
    }
    written = []
    for name, (header, rows) in tables.items():
        path = plots_dir / name
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows((f"{a:.6f}", f"{b:.6f}") for a, b in rows)
        written.append(path)
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], ls="--", c="grey")
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].plot(recall, precision)
    axes[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    axes[2].plot(mean_pred, frac_pos, marker="o")
    axes[2].plot([0, 1], [0, 1], ls="--", c="grey")
    axes[2].set(title="Calibration", xlabel="mean predicted", ylabel="fraction delayed")
    figure.tight_layout()
    png = plots_dir / "curves.png"
    figure.savefig(png, dpi=80)
    plt.close(figure)
    written.append(png)
    return written
