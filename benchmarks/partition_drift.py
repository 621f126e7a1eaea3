"""What validation.drift sees on a task's real partitions: each partition against the one
before (all must pass), and one partition (the flight-delay task's July) with one column
converted to another unit or encoding (each must block). The conversions are the flight-delay
task's columns; another task's partitions are scored month against month, and converted where
it has a column of the same name. Prints a table and writes reports/partition-drift.json.

    python benchmarks/partition_drift.py [--params params.yaml] [--task NAME]
        [--out reports/partition-drift.json]

Needs the task's raw partitions (`maas ingest`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import load_params
from maas.pipeline.data.partitions import read_partition, task_partitions
from maas.pipeline.validation.drift import check_drift


def _hhmm_to_minutes(s: pd.Series) -> pd.Series:
    return (s // 100) * 60 + s % 100


def _f_to_c(s: pd.Series) -> pd.Series:
    return (s - 32) * 5 / 9


CONVERSIONS = {  # column: (the change, the conversion)
    "temp": ("°C", _f_to_c),
    "dewp": ("°C", _f_to_c),
    "pressure": ("inHg", lambda s: s * 0.02953),
    "visib": ("km", lambda s: s * 1.609),
    "precip": ("mm", lambda s: s * 25.4),
    "wind_speed": ("km/h", lambda s: s * 1.609),
    "wind_gust": ("km/h", lambda s: s * 1.609),
    "distance": ("km", lambda s: s * 1.609),
    "sched_dep_time": ("minutes after midnight", _hhmm_to_minutes),
    "sched_arr_time": ("minutes after midnight", _hhmm_to_minutes),
    "carrier": ("lower case", lambda s: s.astype(str).str.lower()),
    "dest": ("ICAO codes", lambda s: "K" + s.astype(str)),
}


def _score(outcome: dict[str, Any]) -> float:
    return float(outcome["observed"].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--out", type=Path, default=Path("reports/partition-drift.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    params = load_params(args.params, task=args.task)
    validation = params.validation.model_copy(update={"cache_dir": None})
    partitions = task_partitions(params.data)
    frames = [(p, read_partition(p)) for p in partitions]
    if len(frames) < 2:
        raise SystemExit(f"{params.data.raw_dir} holds {len(frames)} partition(s); need two")
    started = time.perf_counter()
    months = check_drift(frames, validation, params.data, None, Path(tempfile.mkdtemp()))
    seconds = time.perf_counter() - started
    largest: dict[str, dict[str, Any]] = {}
    for partition, outcomes in months.items():
        for o in outcomes:
            if o["column"] not in largest or _score(o) > largest[o["column"]]["score"]:
                largest[o["column"]] = {"score": _score(o), "partition": partition}
    failed = [(p, o["column"]) for p, os in months.items() for o in os if not o["success"]]
    # July against June for the flight-delay task's year; the newest pair for a shorter one
    index = 6 if len(frames) > 6 else len(frames) - 1
    (before, reference), (july, current) = frames[index - 1], frames[index]
    converted = {}
    for column, (change, convert) in CONVERSIONS.items():
        if column not in current or column not in validation.drift.thresholds:
            continue
        bad = current.assign(**{column: convert(current[column])})
        pair = check_drift([(before, reference), (july, bad)], validation, params.data)
        (mine,) = [o for o in pair[july.name] if o["column"] == column]
        blocked = not mine["success"]
        converted[column] = {"change": change, "score": _score(mine), "blocked": blocked}
    result = {
        "thresholds": validation.drift.thresholds,
        "months_scored": len(months),
        "seconds": round(seconds, 1),
        "real_months_failed": failed,
        "largest_real_score": largest,
        "converted": {"partition": july.name, "against": before.name, "columns": converted},
    }
    print(f"{len(months)} month pairs scored in {seconds:.1f} s; real months failing: {failed}")
    print(f"{'column':16} {'largest real':>12} {'threshold':>9}  converted ({july.name})")
    for column, threshold in validation.drift.thresholds.items():
        real = largest.get(column, {}).get("score", float("nan"))
        conv = converted.get(column)
        shown = (
            f"{conv['change']}: {conv['score']:.3g} " + ("blocked" if conv["blocked"] else "PASSED")
            if conv
            else "-"
        )
        print(f"{column:16} {real:12.3g} {threshold:9g}  {shown}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
