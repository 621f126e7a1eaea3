"""The task's partitions replicated to `factor` times their rows, for benchmarks/scale.py.

Copy 0 of each partition is the partition itself; every further copy jitters it slightly:

- float columns: + N(0, 2% of the column's standard deviation), rounded where the column
  holds whole numbers (delays in minutes), clipped to the column's own range in that
  partition (ranges and bounds hold as in the real data; the label comes from the jittered
  label column by the task's own rule, so the delayed share stays that of the data);
- clock times (validation.clock_times, hhmm): all shifted by the same -5..+5 minutes per row,
  the scheduled one clipped inside its day (the row stays in its partition), the others modulo
  a day; the clock parts (validation.clock_parts, e.g. hour and minute) follow;
- the first integer column of validation.unique_key that is not a time part (the flight
  number) gets copy * 10^digits added, so every copy's keys are new and the key stays unique;
- categories, dates and every other column are kept.

The partition names (and so their count) stay those of the source: rows per partition grow.
A factor below 1 keeps a seeded sample of each partition's rows (no jitter): a tiny size for
the smoke test. A fractional part above 1 adds a jittered sample of that share.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from maas.config import DataParams, ValidationParams

JITTER_STD_SHARE = 0.02  # float noise: this share of the column's standard deviation
SHIFT_MINUTES = 5  # clock times move by at most this many minutes
MINUTES_PER_DAY = 24 * 60


def key_column(frame: pd.DataFrame, validation: ValidationParams, data: DataParams) -> str:
    """The integer column of the unique key that copies renumber (not a time part)."""
    time = data.time
    time_parts = {time.column} if time is not None and time.column else set()
    if time is not None and time.parts is not None:
        time_parts |= {v for v in time.parts.model_dump().values() if v}
    for column in validation.unique_key:
        if column not in time_parts and frame[column].dtype.kind in "iu":
            return column
    raise ValueError(
        f"validation.unique_key {validation.unique_key} has no integer column outside the time "
        "parts to renumber: the task cannot be replicated with new keys"
    )


def shift_hhmm(values: pd.Series, minutes: np.ndarray, clip: bool) -> pd.Series:
    """hhmm clock values moved by `minutes` (NaN stays NaN); within the day or modulo a day."""
    numbers = values.to_numpy(dtype="float64")
    total = (numbers // 100) * 60 + numbers % 100 + minutes
    total = np.clip(total, 0, MINUTES_PER_DAY - 1) if clip else np.mod(total, MINUTES_PER_DAY)
    hhmm = (total // 60) * 100 + total % 60
    if values.dtype.kind in "iu":
        return pd.Series(hhmm.astype(values.dtype), index=values.index)
    return pd.Series(hhmm, index=values.index)


def jittered_copy(
    frame: pd.DataFrame,
    copy: int,
    rng: np.random.Generator,
    validation: ValidationParams,
    data: DataParams,
) -> pd.DataFrame:
    """Copy number `copy` (>= 1) of one partition: new keys, jittered numbers and times."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype.kind != "f" or column in validation.clock_times:
            continue
        present = values.dropna()
        if present.empty:
            continue
        noise = rng.normal(0.0, JITTER_STD_SHARE * float(present.std() or 0.0), len(out))
        if np.array_equal(present, present.round()):  # whole minutes stay whole (delays)
            noise = noise.round()
        out[column] = (values + noise).clip(present.min(), present.max())
    scheduled = data.time.parts.clock if data.time and data.time.parts else None
    minutes = rng.integers(-SHIFT_MINUTES, SHIFT_MINUTES + 1, len(out)).astype("float64")
    for column in validation.clock_times:
        out[column] = shift_hhmm(out[column], minutes, clip=column == scheduled)
    for part, spec in validation.clock_parts.items():
        source, which = spec.split(".")
        hhmm = out[source].to_numpy(dtype="float64")
        value = hhmm // 100 if which == "hour" else hhmm % 100
        out[part] = value.astype(out[part].dtype) if out[part].dtype.kind in "iu" else value
    key = key_column(frame, validation, data)
    step = 10 ** len(str(int(frame[key].max())))
    out[key] = out[key] + copy * step
    return out


def replicate_partition(
    frame: pd.DataFrame,
    factor: float,
    rng: np.random.Generator,
    validation: ValidationParams,
    data: DataParams,
) -> pd.DataFrame:
    """One partition at `factor` times its rows (see the module's docstring)."""
    if factor <= 0:
        raise ValueError(f"a scale factor must be above 0, not {factor}")
    if factor < 1:
        keep = max(1, round(factor * len(frame)))
        picked = np.sort(rng.choice(len(frame), size=keep, replace=False))
        return frame.iloc[picked].reset_index(drop=True)
    whole, rest = int(factor), factor - int(factor)
    parts = [frame] + [jittered_copy(frame, c, rng, validation, data) for c in range(1, whole)]
    if rest > 0:
        share = frame.sample(frac=rest, random_state=int(rng.integers(2**31)))
        parts.append(jittered_copy(share, whole, rng, validation, data))
    return pd.concat(parts, ignore_index=True)


def replicate(
    raw_dir: Path,
    into: Path,
    factor: float,
    validation: ValidationParams,
    data: DataParams,
    seed: int = 0,
) -> int:
    """Every partition file of `raw_dir` at `factor` times its rows into `into` (same names);
    returns the rows written."""
    into.mkdir(parents=True, exist_ok=False)
    rows = 0
    files = sorted(raw_dir.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no partitions (*.parquet) in {raw_dir}")
    for index, path in enumerate(files):
        rng = np.random.default_rng([seed, index, math.floor(factor * 1000)])
        frame = replicate_partition(pd.read_parquet(path), factor, rng, validation, data)
        frame.to_parquet(into / path.name, index=False)
        rows += len(frame)
    return rows
