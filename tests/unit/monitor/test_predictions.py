"""The prediction log read back: rows in the order they were served, across rolled-over files
and serving processes, so the newest prediction of a record served twice is the one kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from maas.config import Params
from maas.monitor.evidence import join_labels
from maas.monitor.predictions import META, LogColumns, log_files, read_predictions

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
    frame = read_predictions(tmp_path, "flights", LogColumns.of(params)).frame
    assert frame["logged_at"].is_monotonic_increasing
    assert frame["logged_at"].iloc[-1] == pd.Timestamp("2026-12-01T10:50:00Z")

    labels = pd.DataFrame([{**KEY, "arr_delay": 40.0}, {**KEY, "flight": 201, "arr_delay": 0.0}])
    realized = join_labels(frame, labels, params)
    assert realized is not None and realized.rows == 2
    assert realized.metrics["brier"] == pytest.approx((0.1**2 + 0.5**2) / 2)  # 0.9, not 0.1


def test_a_hostile_log_with_thousands_of_random_keys_reads_only_the_tasks_columns(
    tmp_path: Path, params: Params
) -> None:
    """Issue 27 item 9, the attack: every record carries 100 random keys (30,000 distinct ones
    in all), nested values in key columns too. Before, each became a column (+573 MiB for
    0.87 MB of such a log); now the frame holds only the task's columns, and the memory the
    read takes stays within what those columns need."""
    import secrets
    import tracemalloc

    lines = []
    for number in range(300):
        junk = {secrets.token_hex(8): secrets.token_hex(8) for _ in range(100)}
        record = {**junk, **KEY, "flight": number, "sched_dep_time": 905, "card_number": "4111"}
        if number == 0:
            record["carrier"] = {"nested": list(range(1000))}  # a key column, not a scalar
        entry = json.loads(_line(number % 60, 0.5))
        entry["request"]["flights"] = [record]
        entry["response"]["predictions"][0].update({secrets.token_hex(8): 1 for _ in range(50)})
        lines.append(json.dumps(entry) + "\n")
    (tmp_path / "host-1.jsonl").write_text("".join(lines))
    columns = LogColumns.of(params)

    tracemalloc.start()
    rows = read_predictions(tmp_path, "flights", columns, chunk_rows=64)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    frame = rows.frame
    assert len(frame) == 300 and rows.skipped == 0
    assert set(frame.columns) <= columns.fields | columns.outputs | {*META}
    assert {"flight", "carrier", "sched_dep_time", "delay_probability"} <= set(frame.columns)
    assert "card_number" not in frame.columns and len(frame.columns) < 20
    assert frame["carrier"].isna().sum() == 1  # the nested value read as missing
    assert rows.outputs == ["delay_probability", "delayed"]
    # one line's parse (~10 KB) plus a 300-row frame of <20 columns, far below a column per key
    assert peak < 4 << 20, f"peak {peak / 1e6:.1f} MB"
