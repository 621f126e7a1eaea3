"""`maas task init`: profile a CSV/parquet file and propose a task file — the Great Expectations
suite's settings inferred from the data (columns and types, domains of low-cardinality
categoricals, ranges from robust quantiles, null rates, a row-count band, the label rate,
classes or range), the
features, the partitioning — for the user to review, with notes on what to check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from maas.config.base import CATEGORY_TYPES
from maas.config.task_spec import Frequency
from maas.errors import DataError
from maas.pipeline.data.partitions import label_values
from maas.pipeline.data.profile_history import (
    DRIFT_PAIRS,
    distribution_bands,
    drift_thresholds,
    rounded,
)
from maas.pipeline.data.profile_time import order_rows
from maas.pipeline.data.proposal import (
    label_transform,
    one_class,
    propose_floors,
    propose_model,
    propose_steps,
    propose_window,
    training_rows,
)
from maas.pipeline.data.sources import read_table
from maas.pipeline.data.test_window import MAX_TEST_SHARE

DOMAIN_MAX = 12  # a text column with at most this many values gets a closed domain (block)
CATEGORY_MAX = 200  # more distinct values than this (and most rows unique): an identifier
MAX_CLASSES = 50  # a multiclass label with more values is likely a number or an identifier


@dataclass(frozen=True)
class TaskRequest:
    """What the user said on the command line."""

    name: str
    data: Path
    label: str
    time: str | None = None  # None: a table without a time column (split by a key's hash)
    kind: str = "binary"
    positive: str | None = None
    threshold: float | None = None
    partition: Frequency | Literal["number"] | None = None
    exclude: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    min_test_rows: int | None = None  # None: proposed from the data (proposal.py)
    min_test_class_rows: int | None = None
    transform: str | None = None  # regression: none | log1p (None: proposed)
    validation_fraction: float = 0.1  # from here: params.yaml's settings the proposals follow
    seed: int = 42
    max_test_share: float = MAX_TEST_SHARE  # params.yaml's data section
    shared_steps: tuple[int, int, int] = (1024, 8, 4)  # train.batch_size, max_epochs, patience
    shared_embedding: str = "none"  # model.numeric_embeddings.kind


@dataclass
class Profile:
    task: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was inferred, what to check


def column_type(values: pd.Series) -> str:
    """int, float, str, or bool (True/False, with or without missing values)."""
    present = values.dropna().map(type).isin([bool, np.bool_])
    if pd.api.types.is_bool_dtype(values) or (len(present) and present.all()):
        return "bool"
    if not pd.api.types.is_numeric_dtype(values):
        return "str"
    return "int" if pd.api.types.is_integer_dtype(values) else "float"


def numeric_range(values: pd.Series) -> tuple[float, float]:
    """[q0.1%, q99.9%] widened by a tenth of its width (not below 0 for a column that never
    is): robust to a few wild readings."""
    low, high = values.quantile([0.001, 0.999]).to_numpy(dtype=float)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    floor = 0.0 if values.min() >= 0 else low - pad  # never negative: stays so
    return rounded(max(low - pad, floor)), rounded(high + pad)


def profile(request: TaskRequest) -> Profile:
    frame = read_table(request.data)
    if frame.empty:
        raise DataError(f"{request.data} holds no rows: --data names a file with rows")
    if frame.shape[1] < 2:
        raise DataError(
            f"{request.data} has {frame.shape[1]} column: a task needs a label and inputs"
        )
    named = [request.label, *request.exclude, *request.keys]
    missing = [c for c in dict.fromkeys(named) if c not in frame.columns]
    if missing:
        raise DataError(f"{request.data} has no column(s) {missing}; it has {list(frame.columns)}")
    notes: list[str] = []
    order = order_rows(
        frame, request.data, request.time, request.partition, request.keys, request.label, notes
    )
    periods, frequency = order.periods, order.partitioning
    label = label_rule(frame, request, notes)
    labels = label_values(frame, _label_spec(label))
    one_class(labels, label, request.label)
    label |= label_transform(request.transform, request.kind, labels, request.label, notes)
    unlabeled = float(np.isnan(labels).mean())
    if unlabeled:
        notes.append(
            f"{unlabeled:.1%} of rows have no label: they are dropped (data.label.unlabeled), "
            "so a partition's unlabeled rows are reported (validation.not_null, warn), never block"
        )
    inputs = [c for c in frame.columns if c not in {request.label, *request.exclude, *request.keys}]
    columns = {c: column_type(frame[c]) for c in frame.columns}  # the suite sees every column
    # no weekday feature from an integer period, nor (as yet) from dates written as digits:
    # a request's date field is ISO 8601 text (maas.serving.derive), which 20130105 is not
    integer_time = order.partitioning == "number" or bool(order.time and order.time.format)
    features, validation = infer_suite(frame, inputs, columns, request, notes, integer_time)
    # unlabeled rows are dropped (data.label.unlabeled: drop): each one is reported (warn),
    # none blocks a partition, however many a small one holds
    validation["not_null"].append({"column": request.label, "mostly": 1.0, "severity": "warn"})
    counts = periods.value_counts()
    validation |= {
        "row_count": {"min": int(counts.min() // 2), "max": int(counts.max() * 2 + 10)},
        "unique_key": list(request.keys),
    }
    each = {"day": "daily", "number": "integer-period", "bucket": "hash-bucket"}.get(
        frequency, f"{frequency}ly"
    )
    shape = f"{len(counts)} {each} partitions of {int(counts.min())}-{int(counts.max())} rows"
    notes.append(f"{shape} (band: validation.row_count)")
    label_checks(frame, label, labels, periods, validation, notes)
    validation["distributions"] = distribution_bands(frame, list(features["numeric"]), periods)
    if validation["distributions"]:
        notes.append(
            "mean and spread bands per partition for the numeric inputs "
            "(validation.distributions, warn): a unit change moves them; make the "
            "ones you trust `block`"
        )
    drift = drift_thresholds(
        frame, [*features["numeric"], *features["categorical"]], columns, periods
    )
    if drift:
        validation["drift"] = {"thresholds": drift, "severity": "warn"}
        notes.append(
            "drift thresholds per column, each partition against the one before "
            "(validation.drift, warn): 1.5x the largest score between the newest "
            f"{DRIFT_PAIRS + 1} partitions; make them `block` where you trust them"
        )
    asked = {"min_test_rows": request.min_test_rows}
    asked["min_test_class_rows"] = request.min_test_class_rows
    share = request.max_test_share
    window_settings, window = propose_window(labels, periods, label, notes, asked, frequency, share)
    run = (request.validation_fraction, request.seed)  # as the run splits and seeds
    floors = (
        propose_floors(frame, labels, periods, window, features, label, notes, order.time, *run)
        if window
        else {}
    )
    steps = propose_steps(training_rows(labels, periods, window), notes, *request.shared_steps)
    name = request.name
    task = {
        "name": name,
        "description": f"{label['column']} {_rule_text(label)} (made by maas task init)",
        "data": {
            "raw_dir": f"data/{name}/raw",
            "processed_dir": f"data/{name}/processed",
            "source": {"kind": "file", "path": str(request.data)},
            ("time" if order.time is not None else "split"): order.section,
            "label": label,
            **window_settings,
        },
        "validation": validation,
        "features": features,
        "serving": {"body_key": "records"},
        # the task's own working files, apart from every other task's
        "train": {
            "models_dir": f"models/{name}",
            "checkpoint_dir": f".maas/checkpoints/{name}",
            **steps,
        },
        "evaluate": {
            "metrics_path": f"reports/{name}/metrics.json",
            "plots_dir": f"reports/{name}/plots",
        },
        "tune": {"output": f"params.tuned.{name}.yaml"},
        **propose_model(list(features["numeric"]), notes, request.shared_embedding),
        **({"promotion": {"floors": floors}} if floors else {}),
    }
    return Profile(task, notes)


def _label_spec(label: dict[str, Any]) -> Any:
    from maas.config import LabelSpec

    return LabelSpec.model_validate(label)


def _rule_text(label: dict[str, Any]) -> str:
    if "threshold" in label:
        return f">= {label['threshold']}"
    if label["kind"] == "multiclass":
        return f"in {len(label['classes'])} classes"
    if label["kind"] == "regression":
        return "(a value)"
    return f"== {label['positive']!r}"


def label_checks(
    frame: pd.DataFrame,
    label: dict[str, Any],
    labels: np.ndarray,
    periods: pd.Series,
    validation: dict[str, Any],
    notes: list[str],
) -> None:
    """The label's own checks: binary, the positive share per partition (a band); multiclass,
    the classes (the suite blocks a new value); regression, the value's range (warn)."""
    kind = label["kind"]
    if kind == "binary":
        rates = pd.Series(labels).groupby(periods.to_numpy()).mean()
        validation["label_rate"] = {
            "min": rounded(max(0.0, rates.min() - 0.1)),
            "max": rounded(min(1.0, rates.max() + 0.1)),
        }
        notes.append(
            f"label rate {rates.min():.3f}-{rates.max():.3f} per partition (band: "
            "validation.label_rate)"
        )
    elif kind == "multiclass":
        shares = pd.Series(labels).dropna().value_counts(normalize=True).sort_index()
        named = ", ".join(f"{label['classes'][int(i)]} {share:.1%}" for i, share in shares.items())
        notes.append(
            f"classes of {label['column']}: {named}; a value outside them blocks a run "
            "(data.label.classes)"
        )
    else:
        values = pd.to_numeric(frame[label["column"]], errors="coerce").dropna()
        low, high = numeric_range(values)
        validation["ranges"].append(
            {"column": label["column"], "min": low, "max": high, "mostly": 0.99, "severity": "warn"}
        )
        notes.append(
            f"{label['column']} ranges {values.min():g} to {values.max():g} (mean "
            f"{values.mean():g}): values outside [{low:g}, {high:g}] are reported"
        )


def label_rule(frame: pd.DataFrame, request: TaskRequest, notes: list[str]) -> dict[str, Any]:
    """The label as the task file writes it, checked against the data."""
    values = frame[request.label]
    rule: dict[str, Any] = {"column": request.label, "kind": request.kind, "unlabeled": "drop"}
    if request.kind != "binary" and (request.positive is not None or request.threshold is not None):
        raise DataError(f"--positive and --threshold are for binary labels, not {request.kind}")
    if request.kind == "regression":
        if column_type(values) in CATEGORY_TYPES:
            raise DataError(
                f"regression label {request.label!r} is not numeric: it holds text "
                f"such as {values.dropna().astype(str).iloc[0]!r}"
            )
        return rule
    if request.kind == "multiclass":
        return rule | {"classes": class_values(values, request.label)}
    if request.kind != "binary":
        raise DataError(f"--kind {request.kind!r}: one of binary, multiclass, regression")
    return rule | binary_rule(values, request, notes)


def class_values(values: pd.Series, column: str) -> list[str]:
    """The classes of a multiclass label as text (sorted), as categories are read."""
    from maas.serving.preprocessing import as_category_strings

    strings = as_category_strings(values.dropna().to_numpy())
    classes = sorted(set(strings.tolist()) - {""})
    if len(classes) < 2:
        raise DataError(
            f"multiclass label {column!r} has {len(classes)} value(s): it needs two or more "
            "(--label names another column)"
        )
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"multiclass label {column!r} has {len(classes)} values (over "
            f"{MAX_CLASSES}): a number? use --kind regression"
        )
    return classes


def binary_rule(values: pd.Series, request: TaskRequest, notes: list[str]) -> dict[str, Any]:
    """The binary label: by threshold, by the named positive value, or (two values) the rarer."""
    if request.threshold is not None:
        if column_type(values) in CATEGORY_TYPES:
            raise DataError(f"--threshold needs a numeric label; {request.label!r} holds text")
        return {"threshold": request.threshold}
    present = values.dropna()
    distinct = present.astype(str).unique().tolist()
    if request.positive is not None:
        if request.positive not in distinct:
            raise DataError(
                f"positive value {request.positive!r} is not in {request.label!r}: "
                f"it holds {sorted(distinct)[:10]}"
            )
        if len(distinct) > 2:
            raise DataError(
                f"binary label {request.label!r} has {len(distinct)} values; name a "
                "two-valued column, give --threshold or --kind multiclass"
            )
        return {"positive": _as_written(present, request.positive)}
    if len(distinct) != 2:
        raise DataError(
            f"binary label {request.label!r} has {len(distinct)} values: give "
            "--positive VALUE (a two-valued column), --threshold X, or --kind "
            "multiclass / regression"
        )
    rarer = present.astype(str).value_counts().idxmin()
    notes.append(f"positive class: {request.label} == {rarer!r} (the rarer value): check it")
    return {"positive": _as_written(present, rarer)}


def _as_written(values: pd.Series, text: str) -> Any:
    """The positive value as the column holds it (a number stays a number in the YAML)."""
    if column_type(values) in CATEGORY_TYPES:
        return text
    number = float(text)
    return int(number) if number.is_integer() else number


def infer_suite(
    frame: pd.DataFrame,
    inputs: list[str],
    columns: dict[str, str],
    request: TaskRequest,
    notes: list[str],
    integer_time: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    categorical: list[str] = []
    numeric: dict[str, Any] = {}
    domains: dict[str, list[str]] = {}
    ranges: list[dict[str, Any]] = []
    not_null: list[dict[str, Any]] = []
    for column in inputs:
        values = frame[column]
        null_rate = float(values.isna().mean())
        if column == request.time:  # when each row happened: not an input
            continue
        if columns[column] in CATEGORY_TYPES:
            distinct = values.dropna().astype(str).nunique()
            if distinct > CATEGORY_MAX and distinct > 0.5 * values.notna().sum():
                notes.append(
                    f"{column}: {distinct} distinct values, mostly unique: not a feature "
                    "(an identifier? add it to --exclude)"
                )
                continue
            categorical.append(column)
            if distinct <= DOMAIN_MAX and columns[column] == "str":  # bool: its type pins it
                domains[column] = sorted(values.dropna().astype(str).unique().tolist())
        else:
            low, high = numeric_range(values.dropna())
            optional = null_rate > 0.01
            numeric[column] = {"optional": True} if optional else {}
            ranges.append(
                {"column": column, "min": low, "max": high, "mostly": 0.99, "severity": "warn"}
            )
            if optional:
                notes.append(f"{column}: {null_rate:.1%} missing: optional in requests (check)")
        mostly = 1.0 if null_rate == 0 else rounded(max(0.01, 1 - 2 * null_rate - 0.01))
        not_null.append(
            {"column": column, "mostly": mostly, "severity": "block" if null_rate == 0 else "warn"}
        )
    if domains:
        notes.append(
            f"closed domains for {sorted(domains)}: a new value blocks a run (edit "
            "validation.domains if new values are expected)"
        )
    derived: dict[str, Any] = {}
    if request.time is not None and not integer_time:  # a date's weekday (not a year's)
        name = f"{request.time}_day_of_week"
        derived[name] = {"source": request.time, "transform": "day_of_week"}
        categorical.append(name)
    features = {
        "categorical": categorical,
        "numeric": numeric,
        "derived": derived,
        "min_frequency": 5,
    }
    validation = {
        "reports_dir": f"reports/{request.name}/validation",
        "columns": columns,
        "domains": domains,
        "ranges": ranges,
        "not_null": not_null,
        "extra_columns": "warn",
    }
    return features, validation
