"""Test metrics, baselines on the same split, plots, and the promotion gate."""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.config import PromotionParams

log = logging.getLogger(__name__)

METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")


class GateRejected(RuntimeError):
    """Raised only where a caller requires a passing gate (e.g. a forced promotion)."""


def compute_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y = np.asarray(labels).astype(int)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    if len(np.unique(y)) < 2:
        raise ValueError("the test set needs both delayed and on-time flights to compute metrics")
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "accuracy": float(accuracy_score(y, p >= 0.5)),
    }


def fit_baselines(
    names: list[str],
    train_cat: np.ndarray,
    train_num: np.ndarray,
    train_y: np.ndarray,
    test_cat: np.ndarray,
    test_num: np.ndarray,
    seed: int,
) -> dict[str, np.ndarray]:
    """Baseline test probabilities, fitted on exactly the features our model sees."""
    from scipy import sparse
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    probs: dict[str, np.ndarray] = {}
    for name in names:
        if name == "prior":
            probs[name] = np.full(len(test_cat), float(np.mean(train_y)))
        elif name == "logistic_regression":
            encoder = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
            train_x = sparse.hstack([encoder.fit_transform(train_cat), train_num]).tocsr()
            test_x = sparse.hstack([encoder.transform(test_cat), test_num]).tocsr()
            model = LogisticRegression(max_iter=1000)
            model.fit(train_x, train_y)
            probs[name] = model.predict_proba(test_x)[:, 1]
        elif name == "hist_gradient_boosting":
            train_x = np.hstack([train_cat, train_num])
            test_x = np.hstack([test_cat, test_num])
            categorical = [True] * train_cat.shape[1] + [False] * train_num.shape[1]
            model = HistGradientBoostingClassifier(
                categorical_features=categorical, random_state=seed
            )
            model.fit(train_x, train_y)
            probs[name] = model.predict_proba(test_x)[:, 1]
        else:
            raise ValueError(f"unknown baseline {name!r}")
    return probs


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


@dataclass
class GateDecision:
    passed: bool
    promoted: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_gate(
    test: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion: dict[str, Any] | None,
    validation_status: str,
    params: PromotionParams,
) -> GateDecision:
    """Floors, baselines, no regression vs the champion, validation; then the promotion policy."""
    reasons: list[str] = []
    failed = False
    auc = test["roc_auc"]
    if auc < params.min_roc_auc:
        failed = True
        reasons.append(f"ROC AUC {auc:.4f} is below the floor {params.min_roc_auc:.4f}")
    else:
        reasons.append(f"ROC AUC {auc:.4f} meets the floor {params.min_roc_auc:.4f}")
    for name in params.must_beat:
        base = baselines[name]["roc_auc"]
        margin = auc - base
        if margin > 0:
            reasons.append(f"beats baseline {name} (ROC AUC {base:.4f}, {margin:+.4f})")
        elif margin >= -params.baseline_tolerance and name != "prior":
            reasons.append(
                f"within {params.baseline_tolerance} of baseline {name} "
                f"(ROC AUC {base:.4f}, {margin:+.4f})"
            )
        else:
            failed = True
            reasons.append(f"does not beat baseline {name} (ROC AUC {base:.4f}, {margin:+.4f})")
    if params.require_validation and validation_status == "failed":
        failed = True
        reasons.append("data validation failed")
    beats_champion = True
    if champion is not None:
        champ_auc = float(champion["roc_auc"])
        if auc < champ_auc - params.max_regression:
            failed = True
            reasons.append(
                f"regresses vs champion v{champion['version']} (ROC AUC {champ_auc:.4f}) by more "
                f"than {params.max_regression}"
            )
        beats_champion = auc > champ_auc
        if not failed:
            reasons.append(
                f"{'beats' if beats_champion else 'does not beat'} champion v{champion['version']} "
                f"(ROC AUC {champ_auc:.4f}) on the same test month"
            )
    else:
        reasons.append("no champion yet")
    promoted = not failed and params.auto_promote and beats_champion
    if not failed and not params.auto_promote:
        reasons.append("auto_promote is off: promote by hand with `maas promote`")
    return GateDecision(passed=not failed, promoted=promoted, reasons=reasons)
