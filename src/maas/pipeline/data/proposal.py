"""What `maas task init` proposes beyond the validation suite, measured on the file: how the
label is learned (log1p for a skewed positive value), the test window's size (and the window
that results), and the gate's floors from the baselines' scores on that window.

Each proposal is written into the task file and said in a note, for the team to review. A
label with one class (or one value) is refused here, naming the flag that fixes it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from maas.config import TimeSpec
from maas.config.kinds import METRICS, SCORE, better
from maas.config.task_spec import Partitioning
from maas.errors import DataError
from maas.pipeline.data.partitions import name_order, split_latest
from maas.pipeline.data.test_window import TestWindow, WindowRule, choose_test_window
from maas.pipeline.evaluation.gate import RARE_POSITIVE

log = logging.getLogger(__name__)

SKEWED = 2.0  # a positive label more skewed than this is learned as log1p ...
UNSKEWED = 1.0  # ... when log1p brings the skewness under this
CLASS_ROWS = 20  # proposed data.min_test_class_rows, lower for a small file
FLOOR_MARGIN = 0.05  # proposed floor: the linear baseline's score less this (gate metric units)
MIN_STEPS = 40  # optimizer steps an epoch, at the least, that a proposed batch size leaves
TARGET_STEPS = 2000  # optimizer steps in all that proposed epochs give a small table ...
MAX_EPOCHS = 60  # ... within this many epochs
BASELINE_ROWS = 20_000  # baselines at task init fit on at most this many training rows


def one_class(labels: np.ndarray, label: dict[str, Any], column: str) -> None:
    """A label that leaves one class (or one value) has nothing to learn: the flag to fix."""
    present = labels[~np.isnan(labels)]
    if len(np.unique(present)) > 1:
        return
    if label["kind"] == "regression":
        fix = "--label names another column"
    elif "threshold" in label:
        fix = "--threshold splits it into two classes"
    else:
        fix = "--label names another column, or --positive / --kind change the classes"
    if not len(present):
        held = "no value"
    elif label["kind"] == "binary":
        held = f"one class ({'positive' if present[0] else 'negative'})"
    else:
        held = f"one value ({present[0]:g})"
    raise DataError(f"label {column!r} holds {held} over every row: {fix}")


def propose_transform(values: np.ndarray, column: str, notes: list[str]) -> dict[str, Any]:
    """`{"transform": "log1p"}` for a non-negative label whose skewness log1p removes (say
    why, with both skewnesses); {} otherwise."""
    present = pd.Series(np.asarray(values, dtype=np.float64)).dropna()
    if len(present) < 10 or present.min() < 0:
        return {}
    skew = float(present.skew())
    log_skew = float(np.log1p(present).skew())
    if not (skew > SKEWED and abs(log_skew) < UNSKEWED):
        return {}
    notes.append(
        f"{column} is skewed (skewness {skew:.1f}; of log(1 + {column}) {log_skew:.1f}): "
        "learned as log1p (data.label.transform), predicted and scored in its own units; "
        "remove the line to learn it as is"
    )
    return {"transform": "log1p"}


def label_transform(
    asked: str | None, kind: str, labels: np.ndarray, column: str, notes: list[str]
) -> dict[str, Any]:
    """The label's transform: as `asked` (--transform), else proposed for a regression."""
    if asked is not None and kind != "regression":
        raise DataError(f"--transform is for regression labels, not {kind}")
    if asked == "log1p":
        return {"transform": "log1p"}
    if kind == "regression" and asked is None:
        return propose_transform(labels, column, notes)
    return {}


def class_names(label: dict[str, Any]) -> tuple[str, ...]:
    if label["kind"] == "binary":
        return ("negative", "positive")
    return tuple(label.get("classes", ()))


def propose_window(
    labels: np.ndarray,
    periods: pd.Series,
    label: dict[str, Any],
    notes: list[str],
    asked: dict[str, int | None] | None = None,
    partitioning: Partitioning = "month",
    max_share: float = 1.0,
) -> tuple[dict[str, Any], TestWindow | None]:
    """data.min_test_rows and (classification) data.min_test_class_rows for this file (or as
    `asked`: the command line's), and the test window they choose within `max_share` of the
    rows (params.yaml's data.max_test_share; None, and a warning, when none can be formed)."""
    present = ~np.isnan(labels)
    rows = int(present.sum())
    classes = class_names(label)
    settings: dict[str, Any] = {"min_test_rows": int(min(1000, max(50, round(0.1 * rows))))}
    counts = np.bincount(labels[present].astype(int), minlength=len(classes)) if classes else None
    if counts is not None:
        settings["min_test_class_rows"] = int(max(1, min(CLASS_ROWS, counts.min() // 5)))
    settings |= {key: value for key, value in (asked or {}).items() if value is not None}
    if counts is not None:
        for name, count in zip(classes, counts, strict=True):
            if count < 5 * CLASS_ROWS:
                notes.append(
                    f"WARNING: class {name} has {count} row(s) in the whole file: too rare to "
                    "score reliably (the test window holds a few of them)"
                )
        if label["kind"] == "binary" and counts[1] / max(rows, 1) <= RARE_POSITIVE:
            notes.append(
                f"rare positive ({counts[1] / rows:.1%} of rows): the run reports PR AUC "
                "next to ROC AUC; read it, ROC AUC looks good on such tasks"
            )
    names = name_order([str(n) for n in periods.dropna().unique()], partitioning)
    by_period = pd.Series(labels).groupby(periods.to_numpy())
    if not classes:
        settings.pop("min_test_class_rows", None)
    rule = WindowRule(
        1,
        settings["min_test_rows"],
        settings.get("min_test_class_rows", 0),
        classes,
        min_each=1 if label["kind"] == "binary" else 0,
        max_share=max_share,
    )

    def labels_of(name: str) -> np.ndarray:
        return by_period.get_group(name).to_numpy()

    try:
        window = choose_test_window(names, labels_of, rule, int(periods.notna().sum()))
    except DataError as error:
        notes.append(f"WARNING: {error}")
        return settings, None
    notes.append(f"{window.describe()} (data.min_test_rows, data.min_test_class_rows)")
    if window.too_rare:
        notes.append(
            f"WARNING: {', '.join(window.too_rare)}: too rare to hold "
            f"{settings['min_test_class_rows']} test rows each within {max_share:.0%} of the "
            "rows (data.max_test_share): scored on the rows the window holds; the older rows "
            "train"
        )
    return settings, window


def propose_floors(
    frame: pd.DataFrame,
    labels: np.ndarray,
    periods: pd.Series,
    window: TestWindow,
    features: dict[str, Any],
    label: dict[str, Any],
    notes: list[str],
    time: TimeSpec | None,
    validation_fraction: float,
    seed: int,
) -> dict[str, float]:
    """A floor on the gate's default metric: the linear baseline's score on the proposed test
    window less FLOOR_MARGIN, within the metric's range, measured as the run measures it: the
    training partitions in order, less their latest `validation_fraction` (`split_latest`, the
    run's own function), the run's min_frequency and seed. The gate already asks to beat the
    run's baselines; the floor is the team's to raise."""
    from maas.pipeline.evaluation.metrics import compute_metrics, fit_baselines
    from maas.serving.preprocessing import fit_preprocessor

    kind, classes = label["kind"], class_names(label)
    rows = frame.assign(label=labels, partition=periods.to_numpy()).dropna(subset=["label"])
    order = {name: i for i, name in enumerate(window.train)}
    train = rows[rows["partition"].isin(window.train)]
    train = train.iloc[np.argsort(train["partition"].map(order).to_numpy(), kind="stable")]
    test = rows[rows["partition"].isin(window.test)]
    try:
        train, _ = split_latest(train, validation_fraction, time)
    except DataError as error:
        notes.append(f"WARNING: no baseline could be measured ({error}): no floor proposed")
        return {}
    if len(train) > BASELINE_ROWS:
        train = train.sample(BASELINE_ROWS, random_state=0)
    derived = {k: (v["source"], v["transform"]) for k, v in features["derived"].items()}
    numeric = {name: None for name in features["numeric"]}
    pre = fit_preprocessor(
        train, features["categorical"], numeric, int(features["min_frequency"]), derived
    )
    train_cat, train_num = pre.transform(train)
    test_cat, test_num = pre.transform(test)
    y_train, y_test = train["label"].to_numpy(), test["label"].to_numpy()
    metric = METRICS[SCORE[kind]]
    names = ["prior", "linear_regression" if kind == "regression" else "logistic_regression"]
    try:
        preds = fit_baselines(
            names, train_cat, train_num, y_train, test_cat, test_num, seed, kind, len(classes)
        )
        scores = {n: compute_metrics(y_test, p, kind)[metric.name] for n, p in preds.items()}
    except ValueError as error:  # e.g. one class in the training partitions
        notes.append(f"WARNING: no baseline could be measured ({error}): no floor proposed")
        return {}
    linear = scores[names[1]]
    floor = linear - FLOOR_MARGIN if metric.higher_is_better else linear + FLOOR_MARGIN
    if metric.low is not None:
        floor = max(floor, metric.low)
    if metric.high is not None:
        floor = min(floor, metric.high)
    if better(metric, floor, scores["prior"]) <= 0:
        floor = scores["prior"]
    floor = round(float(floor), 3)
    measured = ", ".join(f"{n} {v:.3f}" for n, v in scores.items())
    notes.append(
        f"{metric.label} on the test window: {measured}; floor {floor} proposed "
        "(promotion.floors): the gate also asks the model to beat the run's baselines; "
        "raise the floor to what your use needs"
    )
    return {metric.name: floor}


def training_rows(labels: np.ndarray, periods: pd.Series, window: TestWindow | None) -> int:
    """The labeled rows of the training partitions less the validation slice, about."""
    labeled = ~np.isnan(labels)
    if window is not None:
        labeled &= np.isin(periods.to_numpy(), window.train)
    return int(labeled.sum() * 0.9)


def propose_batch_size(rows: int, notes: list[str], default: int = 1024) -> int:
    """train.batch_size for this table: the shared default (sized for hundreds of thousands of
    rows), halved until an epoch over the training rows has at least MIN_STEPS optimizer
    steps, never under 32. With 1,024 rows a step, a 3,000-row table trained in 3 steps an
    epoch and underfit (measured on the corpus: R² -1.16 at 1,024, 0.968 at 64)."""
    size = default
    while size > 32 and rows / size < MIN_STEPS:
        size //= 2
    if size < default:
        steps = max(1, rows // default)
        notes.append(
            f"train.batch_size {size} proposed ({rows} training rows: {rows // size} steps an "
            f"epoch; {default} would leave {steps})"
        )
    return size


def propose_steps(
    rows: int, notes: list[str], batch_size: int = 1024, max_epochs: int = 8, patience: int = 4
) -> dict[str, int]:
    """The train settings this table is proposed (`propose_batch_size`, `propose_epochs`)
    where they differ from the shared ones (params.yaml's); a batch made smaller also gets
    one torch thread: a 32-row step gains nothing from two, and on a busy 2-core machine
    two spun (digits' MLP step: 240 ms with torch's 2 threads, 3.7 ms with 1)."""
    size = propose_batch_size(rows, notes, batch_size)
    if size == batch_size:
        return propose_epochs(rows, size, notes, (max_epochs, patience))
    notes.append("train.num_threads 1 proposed (a small batch: one torch thread is faster)")
    return {"batch_size": size, "num_threads": 1} | propose_epochs(
        rows, size, notes, (max_epochs, patience)
    )


def propose_epochs(
    rows: int, batch_size: int, notes: list[str], default: tuple[int, int] = (8, 4)
) -> dict[str, int]:
    """train.max_epochs and train.patience for this table: as many epochs as TARGET_STEPS
    optimizer steps take (at most MAX_EPOCHS), patience a quarter of them, when the shared
    `default` (max_epochs, patience; sized for the flights' 300 steps an epoch) trains fewer
    steps; {} otherwise. The corpus at 3,000 rows trained ~450 steps and underfit: macro F1
    0.322 against 0.366 at 40 epochs (bird-strikes, two seeds; logistic regression 0.392)."""
    steps = max(1, -(-rows // batch_size))
    epochs, patience = default
    if steps * epochs >= TARGET_STEPS:
        return {}
    proposed = min(MAX_EPOCHS, -(-TARGET_STEPS // steps))
    settings = {"max_epochs": proposed, "patience": max(patience, proposed // 4)}
    notes.append(
        f"train.max_epochs {proposed} and train.patience {settings['patience']} proposed "
        f"({steps} steps an epoch: {epochs} epochs would train {steps * epochs} steps, "
        f"{TARGET_STEPS:,} wanted)"
    )
    return settings


def propose_model(numeric: list[str], notes: list[str], shared: str = "none") -> dict[str, Any]:
    """`{"model": {"numeric_embeddings": {"kind": "auto"}}}` for a table with numeric inputs
    where params.yaml's `shared` model.numeric_embeddings.kind is none: the run trains plain
    numbers and piecewise-linear embeddings and keeps the better on the validation slice
    (maas.pipeline.training.candidates says why and how well that chooses)."""
    if not numeric or shared != "none":
        return {}
    notes.append(
        "model.numeric_embeddings.kind auto proposed: each run trains the network with plain "
        "numbers and with embeddings of their quantile bins and keeps the better on the "
        "validation slice (twice the training time); name one kind to train it alone"
    )
    return {"model": {"numeric_embeddings": {"kind": "auto"}}}
