"""Test helpers for the rollout's quality analysis: a flight task whose prediction log and raw
partitions live in a temporary folder, requests served into that log by the real writer, and
the labels arriving as a partition."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from maas.config import Params, load_params
from maas.serving.prediction_log import PredictionLog
from tests.helpers import RECORD_FIELDS, ROOT, WEATHER_FIELDS

PER_REQUEST = 10  # records per served request


def flight_params(tmp_path: Path, base: Params | None = None) -> Params:
    """The flight task (or `base`) with its prediction log and raw partitions under
    `tmp_path`."""
    params = base or load_params(ROOT / "params.yaml")
    monitoring = params.monitoring.model_copy(update={"log_dir": tmp_path / "predictions"})
    data = params.data.model_copy(update={"raw_dir": tmp_path / "raw"})
    return params.model_copy(update={"monitoring": monitoring, "data": data})


def true_risk(frame: pd.DataFrame) -> np.ndarray:
    """The delay probability `tests.helpers.make_flights` draws its labels from."""
    risk = -2.0 + 0.08 * (frame["sched_dep_time"].to_numpy() // 100) + 2.5 * frame["precip"]
    return np.asarray(1 / (1 + np.exp(-risk)), dtype=float)


def records_of(frame: pd.DataFrame, params: Params) -> list[dict[str, Any]]:
    """The records as a client sends them: the request's fields and the task's keys, JSON
    values (a NaN is a field left out)."""
    names = list(dict.fromkeys([*RECORD_FIELDS, *WEATHER_FIELDS, *params.logged_keys]))
    rows = frame[names].to_dict("records")
    return [
        {
            key: (value.item() if hasattr(value, "item") else value)
            for key, value in row.items()
            if not (isinstance(value, float) and math.isnan(value))
        }
        for row in rows
    ]


def serve(
    params: Params,
    version: str,
    records: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
    per_request: int = PER_REQUEST,
) -> None:
    """Write what a service of `version` answered into the task's prediction log, as the
    service does: one line per request of `per_request` records."""
    model = params.registry.model_name
    log = PredictionLog(
        params.monitoring.log_dir / model, model, version, max_bytes=1 << 30, backups=1
    )
    try:
        for start in range(0, len(records), per_request):
            body = {params.serving.body_key: records[start : start + per_request]}
            answer = {
                "model_version": version,
                "predictions": predictions[start : start + per_request],
            }
            log.write(json.dumps(body).encode(), json.dumps(answer).encode())
    finally:
        log.close()


def binary_answers(params: Params, probabilities: np.ndarray) -> list[dict[str, Any]]:
    outputs = params.serving.outputs
    return [
        {outputs.probability: float(p), outputs.decision: bool(p >= 0.5)} for p in probabilities
    ]


def arrive_labels(params: Params, frame: pd.DataFrame, name: str = "2013-12") -> None:
    """The period's partition, labels included, lands in the task's raw folder."""
    params.data.raw_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(params.data.raw_dir / f"{name}.parquet", index=False)
