"""Test metrics, and baselines fitted on exactly the features our model sees."""

from __future__ import annotations

import numpy as np

# The test metrics, in the order reports and tables show them.
METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")


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
        raise ValueError("the test set needs rows of both classes to compute metrics")
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
