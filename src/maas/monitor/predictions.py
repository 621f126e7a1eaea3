"""The prediction log read back (written by `maas.serving.prediction_log`): one row per served
record, with its request's id, time, model version and the model's output.

Lines that are not whole JSON objects (a torn last line after a kill, a disk that filled up)
are skipped and counted; every other line is read, so nothing else is lost.

Only the task's own columns are read (`LogColumns`: its declared columns, key and time columns,
the service's output names), whatever a line holds besides, and rows become a frame in chunks
of `CHUNK_ROWS`: a log written by anyone who can reach the service (or its folder) cannot make
the monitor build a column per unknown key (issue 27 item 9: 0.87 MB of random keys made
12,007 columns and +573 MiB). A value that is not a JSON scalar is read as missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import Params
from maas.serving.prediction_log import SUFFIX

# columns the reader adds to each record's own fields
META = ("request_id", "logged_at", "model_version")
CHUNK_ROWS = 20_000  # records gathered as dicts before they become a frame
SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class LogColumns:
    """What is read of a logged record (`fields`) and of its prediction (`outputs`, flattened:
    a multiclass `probabilities.<class>`); anything else in a line is ignored."""

    fields: frozenset[str]
    outputs: frozenset[str]

    @classmethod
    def of(cls, params: Params) -> LogColumns:
        """A task's: its declared columns but the label, its key and time columns."""
        declared = set(params.validation.columns) - {params.data.label.column}
        names = params.serving.outputs
        outputs = {names.probability, names.decision, names.predicted_class, names.value}
        outputs |= {f"{names.probabilities}.{c}" for c in params.data.label.classes}
        return cls(frozenset(declared | set(params.logged_keys)), frozenset(outputs))


@dataclass
class PredictionRows:
    frame: pd.DataFrame  # the records' fields, their outputs (`outputs`) and META
    outputs: list[str]  # the response's output columns (e.g. delay_probability, delayed)
    files: int = 0
    lines: int = 0
    skipped: int = 0  # torn or unreadable lines
    skipped_by_file: dict[str, int] = field(default_factory=dict)


def log_files(folder: Path) -> list[Path]:
    """A model's log files, current and rolled-over, oldest first per serving process: the
    writer's rotation makes `x.jsonl.N` older than `x.jsonl.N-1` and `x.jsonl` the newest (by
    name, `x.jsonl.10` sorted before `x.jsonl.2`)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and SUFFIX in p.name), key=_rotation_order
    )


def _rotation_order(path: Path) -> tuple[str, int, str]:
    base, _, number = path.name.partition(SUFFIX)
    rolled = number[1:]  # ".3" -> "3"; "" for the current file
    age = int(rolled) if rolled.isdigit() else 0
    return base, -age, path.name


def read_predictions(
    folder: Path, body_key: str, columns: LogColumns, chunk_rows: int = CHUNK_ROWS
) -> PredictionRows:
    """Every logged record of one model (`<log_dir>/<model>`), in the order served: by each
    line's time, lines of one time in log order. A record served twice thus has its newest
    prediction last, the one `keep="last"` keeps. Only `columns` are read."""
    result = PredictionRows(pd.DataFrame(), [])
    chunks = [
        pd.DataFrame(rows)
        for rows in _batches(_rows(folder, body_key, columns, result), chunk_rows)
    ]
    result.frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    result.outputs = [c for c in result.frame.columns if c in columns.outputs]
    if not result.frame.empty:
        result.frame["logged_at"] = pd.to_datetime(result.frame["logged_at"], utc=True)
        # processes write files of their own side by side: their lines interleave in time
        result.frame = result.frame.sort_values("logged_at", kind="stable", ignore_index=True)
    return result


def _rows(
    folder: Path, body_key: str, columns: LogColumns, result: PredictionRows
) -> Iterator[dict[str, Any]]:
    """Each logged record as a row of `columns` and META, counting files, lines and skips."""
    for path in log_files(folder):
        result.files += 1
        with path.open("rb") as handle:
            for raw in handle:
                result.lines += 1
                entry = _entry(raw, body_key)
                if entry is None:
                    result.skipped += 1
                    result.skipped_by_file[path.name] = result.skipped_by_file.get(path.name, 0) + 1
                    continue
                records, predictions = entry["request"][body_key], entry["response"]["predictions"]
                meta = {
                    "request_id": str(entry.get("request_id")),
                    "logged_at": str(entry.get("time")),
                    "model_version": str(entry.get("version")),
                }
                for record, prediction in zip(records, predictions, strict=True):
                    yield {
                        **_pick(record, columns.fields),
                        **_pick(_outputs(prediction), columns.outputs),
                        **meta,
                    }


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pick(values: Any, names: frozenset[str]) -> dict[str, Any]:
    """The wanted keys of a JSON object, a non-scalar value read as missing."""
    if not isinstance(values, dict):
        return {}
    return {
        name: value if value is None or isinstance(value, SCALARS) else None
        for name, value in values.items()
        if name in names
    }


def _entry(raw: bytes, body_key: str) -> dict[str, Any] | None:
    """A whole, well-formed line with as many predictions as records, or None."""
    if not raw.endswith(b"\n"):
        return None  # torn: the writer died mid-line
    try:
        entry = json.loads(raw)
        records, predictions = entry["request"][body_key], entry["response"]["predictions"]
        if not isinstance(records, list) or not isinstance(predictions, list):
            return None
        if len(records) != len(predictions):
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return entry if isinstance(entry, dict) else None


def _outputs(prediction: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(prediction, dict):
        return out
    for key, value in prediction.items():
        if key == "unknown_inputs":
            continue
        if isinstance(value, dict):  # multiclass probabilities: one column per class
            out.update({f"{key}.{name}": p for name, p in value.items()})
        else:
            out[key] = value
    return out
