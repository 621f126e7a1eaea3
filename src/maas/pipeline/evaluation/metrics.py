"""Test metrics of each kind of task, and baselines fitted on exactly the features our model
sees. Predictions: binary, the positive class's probability (n,); multiclass, each class's
probability (n, classes); regression, the value (n,)."""

from __future__ import annotations

from typing import Any

import numpy as np

from maas.config.kinds import metric_names


def compute_metrics(
    labels: np.ndarray, preds: np.ndarray, kind: str = "binary"
) -> dict[str, float]:
    """The kind's metrics (maas.config.kinds.METRICS) of `preds` against `labels`."""
    if kind == "regression":
        return _regression_metrics(np.asarray(labels, dtype=np.float64), np.asarray(preds))
    if kind == "multiclass":
        return _multiclass_metrics(np.asarray(labels).astype(int), np.asarray(preds))
    return _binary_metrics(np.asarray(labels).astype(int), np.asarray(preds))


def _binary_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    if len(np.unique(y)) < 2:
        raise ValueError("the test set needs rows of both classes to compute metrics")
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "accuracy": float(accuracy_score(y, p >= 0.5)),
    }


def _multiclass_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    if probs.ndim != 2:
        raise ValueError(f"multiclass predictions need one column per class, not {probs.shape}")
    classes = list(range(probs.shape[1]))
    p = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    return {
        "log_loss": float(log_loss(y, p, labels=classes)),
        "accuracy": float(accuracy_score(y, predicted)),
        # classes absent from both labels and predictions do not count (sklearn's labels=None)
        "macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
    }


def _regression_metrics(y: np.ndarray, values: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    v = values.astype(np.float64)
    if len(y) < 2:
        raise ValueError("the test set needs two rows or more to compute metrics")
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, v))),
        "mae": float(mean_absolute_error(y, v)),
        "r2": float(r2_score(y, v)),
    }


def fit_baselines(
    names: list[str],
    train_cat: np.ndarray,
    train_num: np.ndarray,
    train_y: np.ndarray,
    test_cat: np.ndarray,
    test_num: np.ndarray,
    seed: int,
    kind: str = "binary",
    n_classes: int = 2,
) -> dict[str, np.ndarray]:
    """Baseline test predictions (in the kind's shape), fitted on exactly the features our
    model sees. `names`: concrete names (maas.config.kinds.baseline_names)."""
    from scipy import sparse
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    regression = kind == "regression"
    preds: dict[str, np.ndarray] = {}
    for name in names:
        model: Any
        if name == "prior":
            preds[name] = _prior(train_y, len(test_cat), kind, n_classes)
            continue
        if name in ("logistic_regression", "linear_regression"):
            if train_cat.shape[1]:
                encoder = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
                train_x = sparse.hstack([encoder.fit_transform(train_cat), train_num]).tocsr()
                test_x = sparse.hstack([encoder.transform(test_cat), test_num]).tocsr()
            else:  # a table of numeric inputs only (the encoder refuses 0 columns)
                train_x, test_x = sparse.csr_matrix(train_num), sparse.csr_matrix(test_num)
            model = LinearRegression() if regression else LogisticRegression(max_iter=1000)
        elif name == "hist_gradient_boosting":
            train_x, test_x, categorical = _boosting_inputs(
                train_cat, train_num, train_y, test_cat, test_num, regression, seed
            )
            estimator = (
                HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
            )
            model = estimator(categorical_features=categorical, random_state=seed)
        else:
            raise ValueError(f"unknown baseline {name!r} for a {kind} task")
        model.fit(train_x, train_y)
        preds[name] = _predictions(model, test_x, kind, n_classes)
    return preds


HGB_MAX_CATEGORIES = 255  # HistGradientBoosting's native categories per column (its max_bins)


def _boosting_inputs(
    train_cat: np.ndarray,
    train_num: np.ndarray,
    train_y: np.ndarray,
    test_cat: np.ndarray,
    test_num: np.ndarray,
    regression: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """HistGradientBoosting's inputs: a category column with at most HGB_MAX_CATEGORIES values
    in the training rows stays a native categorical; one with more (a tail number, a zip
    code: HGB refuses it) enters as its cross-fitted target encoding (scikit-learn's
    TargetEncoder, one column per class for multiclass), as a practitioner would feed it."""
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    wide = [
        j for j in range(train_cat.shape[1]) if np.unique(train_cat[:, j]).size > HGB_MAX_CATEGORIES
    ]
    native = [j for j in range(train_cat.shape[1]) if j not in wide]
    train_parts, test_parts = [train_cat[:, native]], [test_cat[:, native]]
    categorical = [True] * len(native)
    if wide:
        folds = KFold if regression else StratifiedKFold
        encoder = TargetEncoder(
            target_type="continuous" if regression else "auto",
            cv=folds(5, shuffle=True, random_state=seed),
        )
        train_parts.append(encoder.fit_transform(train_cat[:, wide], train_y))
        test_parts.append(encoder.transform(test_cat[:, wide]))
        categorical += [False] * train_parts[-1].shape[1]
    categorical += [False] * train_num.shape[1]
    return (
        np.hstack([*train_parts, train_num]),
        np.hstack([*test_parts, test_num]),
        categorical,
    )


def _prior(train_y: np.ndarray, rows: int, kind: str, n_classes: int) -> np.ndarray:
    if kind == "multiclass":
        counts = np.bincount(np.asarray(train_y).astype(int), minlength=n_classes)
        return np.tile(counts / counts.sum(), (rows, 1))
    return np.full(rows, float(np.mean(train_y)))


def _predictions(model: Any, test_x: Any, kind: str, n_classes: int) -> np.ndarray:
    if kind == "regression":
        return np.asarray(model.predict(test_x), dtype=np.float64)
    probs = model.predict_proba(test_x)
    if kind == "binary":
        return np.asarray(probs[:, list(model.classes_).index(1)])
    full = np.zeros((probs.shape[0], n_classes))  # classes the training rows lack: 0
    full[:, np.asarray(model.classes_).astype(int)] = probs
    return full


__all__ = ["compute_metrics", "fit_baselines", "metric_names"]
