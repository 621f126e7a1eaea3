"""The prediction log read back (written by `maas.serving.prediction_log`): one row per served
record, with its request's id, time, model version and the model's output.

Lines that are not whole JSON objects (a torn last line after a kill, a disk that filled up)
are skipped and counted; every other line is read, so nothing else is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from maas.serving.prediction_log import SUFFIX

# columns the reader adds to each record's own fields
META = ("request_id", "logged_at", "model_version")


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


def read_predictions(folder: Path, body_key: str) -> PredictionRows:
    """Every logged record of one model (`<log_dir>/<model>`), in the order served: by each
    line's time, lines of one time in log order. A record served twice thus has its newest
    prediction last, the one `keep="last"` keeps."""
    rows: list[dict[str, Any]] = []
    outputs: dict[str, None] = {}
    result = PredictionRows(pd.DataFrame(), [])
    for path in log_files(folder):
        result.files += 1
        with path.open("rb") as handle:
            for raw in handle:
                result.lines += 1
                entry = _entry(raw)
                if entry is None:
                    result.skipped += 1
                    result.skipped_by_file[path.name] = result.skipped_by_file.get(path.name, 0) + 1
                    continue
                records, predictions = entry["request"][body_key], entry["response"]["predictions"]
                meta = {
                    "request_id": entry["request_id"],
                    "logged_at": entry["time"],
                    "model_version": str(entry["version"]),
                }
                for record, prediction in zip(records, predictions, strict=True):
                    values = _outputs(prediction)
                    outputs.update(dict.fromkeys(values))
                    rows.append({**record, **values, **meta})
    result.frame = pd.DataFrame(rows)
    result.outputs = list(outputs)
    if not result.frame.empty:
        result.frame["logged_at"] = pd.to_datetime(result.frame["logged_at"], utc=True)
        # processes write files of their own side by side: their lines interleave in time
        result.frame = result.frame.sort_values("logged_at", kind="stable", ignore_index=True)
    return result


def _entry(raw: bytes) -> dict[str, Any] | None:
    """A whole, well-formed line, or None."""
    if not raw.endswith(b"\n"):
        return None  # torn: the writer died mid-line
    try:
        entry = json.loads(raw)
        records = next(iter(v for v in entry["request"].values() if isinstance(v, list)))
        if len(records) != len(entry["response"]["predictions"]):
            return None
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return None
    return entry if isinstance(entry, dict) else None


def _outputs(prediction: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in prediction.items():
        if key == "unknown_inputs":
            continue
        if isinstance(value, dict):  # multiclass probabilities: one column per class
            out.update({f"{key}.{name}": p for name, p in value.items()})
        else:
            out[key] = value
    return out
