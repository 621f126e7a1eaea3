"""The prediction log read back: rows in the order they were served, across rolled-over files
and serving processes, so the newest prediction of a record served twice is the one kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from maas.config import Params
from maas.monitor.evidence import join_labels
from maas.monitor.predictions import log_files, read_predictions

KEY = {"year": 2013, "month": 7, "day": 1, "carrier": "UA", "flight": 100, "origin": "EWR"}


def _line(minute: int, probability: float, key: dict[str, object] = KEY) -> str:
    entry = {
        "time": f"2026-12-01T10:{minute:02d}:00+00:00",
        "request_id": f"r{minute}",
        "model": "flight-delay",
        "version": "1",
        "request": {"flights": [{**key, "sched_dep_time": 905}]},
        "response": {"predictions": [{"delay_probability": probability, "delayed": False}]},
    }
    return json.dumps(entry) + "\n"


def test_a_record_served_twice_across_rollovers_keeps_its_newest_prediction(
    tmp_path: Path, params: Params
) -> None:
    """`x.jsonl.N` is older than `x.jsonl.N-1`, and `x.jsonl` is the newest. Read in name
    order (`x.jsonl, x.jsonl.1, x.jsonl.10, x.jsonl.2`), the join's `keep="last"` kept the
    prediction served first."""
    name = "host-7.jsonl"
    (tmp_path / name).write_text(_line(50, 0.9))  # served again after the rollovers: newest
    for number in range(1, 11):  # .10 the oldest, .1 the newest rolled-over file
        other = {**KEY, "flight": 200 + number}
        (tmp_path / f"{name}.{number}").write_text(_line(40 - number, 0.5, other))
    (tmp_path / f"{name}.2").write_text(_line(30, 0.1))  # the same flight, served first
    (tmp_path / "other-9.jsonl").write_text(_line(35, 0.3, {**KEY, "flight": 300}))

    files = [path.name for path in log_files(tmp_path)]
    assert files.index(f"{name}.10") < files.index(f"{name}.2") < files.index(name)
    frame = read_predictions(tmp_path, "flights").frame
    assert frame["logged_at"].is_monotonic_increasing
    assert frame["logged_at"].iloc[-1] == pd.Timestamp("2026-12-01T10:50:00Z")

    labels = pd.DataFrame([{**KEY, "arr_delay": 40.0}, {**KEY, "flight": 201, "arr_delay": 0.0}])
    realized = join_labels(frame, labels, params)
    assert realized is not None and realized.rows == 2
    assert realized.metrics["brier"] == pytest.approx((0.1**2 + 0.5**2) / 2)  # 0.9, not 0.1
