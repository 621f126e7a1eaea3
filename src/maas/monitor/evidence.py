"""What the monitoring flow judges, per period of the task's partitioning: which period each
served record belongs to, the reference (the champion's training window), and the realized
quality once a period's labels arrive (logged predictions joined with them by the task's key
columns, or the partition re-scored by the champion when nothing was logged)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from maas.config import Params
from maas.config.kinds import gate_metric
from maas.pipeline.data.partitions import (
    Partition,
    counted_labels,
    period_names,
    read_partition,
    row_times,
    served_frequency,
    task_partitions,
)
from maas.pipeline.evaluation.metrics import compute_metrics
from maas.serving.preprocessing import as_category_strings


def served_periods(rows: pd.DataFrame, params: Params) -> pd.Series:
    """Each logged record's period: from its own time columns when the client sent them (a
    flight's date: a replay of last year's months lands in those months), else from when it
    was served."""
    time = params.data.time
    if rows.empty:
        return pd.Series([], dtype=object)
    served = rows["logged_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    logged = period_names(served, served_frequency(params.data))
    if time is not None and all(column in rows.columns for column in time.columns):
        own = period_names(row_times(rows, time), time.partition, time.span)
        return own.where(own.notna(), logged)
    return logged


def output_columns(params: Params) -> list[str]:
    """The logged output columns a task's metrics are computed from (kind order)."""
    outputs, label = params.serving.outputs, params.data.label
    if label.kind == "regression":
        return [outputs.value]
    if label.kind == "multiclass":
        return [f"{outputs.probabilities}.{name}" for name in label.classes]
    return [outputs.probability]


def prediction_column(params: Params) -> str:
    """The output drift is tested on (binary: probability; regression: value; multiclass:
    the predicted class)."""
    outputs, kind = params.serving.outputs, params.data.label.kind
    return {"regression": outputs.value, "multiclass": outputs.predicted_class}.get(
        kind, outputs.probability
    )


def partitions(params: Params) -> dict[str, Partition]:
    return {p.name: p for p in task_partitions(params.data)}


def reference_rows(params: Params, train_partitions: list[str]) -> pd.DataFrame:
    """A seeded sample of the champion's training window (its partitions in raw_dir)."""
    available = partitions(params)
    missing = [name for name in train_partitions if name not in available]
    if not train_partitions or missing:
        raise LookupError(
            f"the champion's training window {train_partitions} is not in "
            f"{params.data.raw_dir} (missing {missing or 'all'})"
        )
    frame = pd.concat([read_partition(available[n]) for n in train_partitions], ignore_index=True)
    rows = min(params.monitoring.reference_rows, len(frame))
    return frame.sample(n=rows, random_state=params.monitoring.seed).reset_index(drop=True)


@dataclass
class Realized:
    source: str  # "logged" (served predictions joined with labels) | "rescored"
    rows: int  # labeled rows scored
    metrics: dict[str, float]
    unmatched: int = 0  # logged predictions of the period with no labeled row
    unlabeled: int = 0  # rows of the partition without a label

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "metrics": self.metrics,
            "unmatched": self.unmatched,
            "unlabeled": self.unlabeled,
        }


def join_labels(served: pd.DataFrame, labeled: pd.DataFrame, params: Params) -> Realized | None:
    """The served predictions of a period scored against its arrived labels, joined on the
    task's key columns (validation.unique_key); None when no logged record carries the keys
    or none matches."""
    keys = list(params.validation.unique_key)
    if not keys or served.empty or any(k not in served.columns for k in keys):
        return None
    outputs = output_columns(params)
    if any(column not in served.columns for column in outputs):
        return None
    left = served[[*keys, *outputs]].copy()
    right = labeled[keys].copy()
    right["__label"] = counted_labels(labeled, params.data.label)  # the gate's rule
    for frame in (left, right):  # 12 and 12.0 and "12" are one key, as categories read
        for key in keys:
            frame[key] = as_category_strings(frame[key].to_numpy())
    left = left.drop_duplicates(subset=keys, keep="last")  # a record served twice counts once
    right = right.drop_duplicates(subset=keys, keep="last")
    joined = left.merge(right, on=keys, how="left", indicator=True)
    matched = joined[joined["_merge"] == "both"]
    if matched.empty:
        return None
    scored = matched[matched["__label"].notna()]
    metrics = _metrics(scored["__label"].to_numpy(), scored[outputs].to_numpy(float), params)
    unmatched = int((joined["_merge"] != "both").sum())
    return Realized("logged", len(scored), metrics, unmatched, len(matched) - len(scored))


def realized_by_version(
    served: pd.DataFrame, labeled: pd.DataFrame, params: Params
) -> dict[str, Realized]:
    """Each served version's own predictions of the period against the arrived labels: a
    version is judged on the rows it answered, never on another version's."""
    if served.empty or "model_version" not in served.columns:
        return {}
    found = {}
    for version, rows in served.groupby(served["model_version"].astype(str), sort=True):
        realized = join_labels(rows, labeled, params)
        if realized is not None:
            found[str(version)] = realized
    return found


def rescored(labeled: pd.DataFrame, predictions: np.ndarray, params: Params) -> Realized:
    """The champion's metrics on a partition it scored itself (nothing of it was logged)."""
    y = counted_labels(labeled, params.data.label)
    keep = ~np.isnan(y)
    preds = np.asarray(predictions)
    preds = preds.reshape(len(y), -1) if preds.ndim > 1 else preds.reshape(len(y), 1)
    metrics = _metrics(y[keep], preds[keep], params)
    return Realized("rescored", int(keep.sum()), metrics, unlabeled=int((~keep).sum()))


def _metrics(y: np.ndarray, outputs: np.ndarray, params: Params) -> dict[str, float]:
    kind = params.data.label.kind
    preds = outputs if kind == "multiclass" else outputs[:, 0]
    if len(y) == 0:
        return {}
    try:
        return compute_metrics(y, preds, kind)
    except ValueError:  # e.g. one class only in a small period: no ROC AUC
        return {}


def registered_metric(params: Params, tags: dict[str, str]) -> tuple[str, float | None]:
    """The gate metric's name and the value the champion was registered with."""
    metric = gate_metric(params.data.label.kind, params.promotion.metric)
    value = tags.get(f"test_{metric.name}")
    return metric.name, float(value) if value is not None else None


def partitions_of(tags: dict[str, str], tag: str = "train_partitions") -> list[str]:
    """The partitions a version trained on (or, with `test_partitions`, was tested on)."""
    return sorted(json.loads(tags.get(tag) or "{}"))
