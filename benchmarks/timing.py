"""Interleaved timing rounds for benchmarks/runtime.py: calls per sample calibrated like
timeit's autorange, variants rotating in every round, medians, spreads and paired ratios."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def per_call_seconds(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calibrate(fn: Callable[[], Any], seconds: float) -> int:
    """Calls per timing sample so one sample lasts about `seconds` (timeit's autorange)."""
    fn()
    once = max(per_call_seconds(fn, 3), 1e-7)
    return max(1, int(seconds / once))


def time_cases(
    cases: dict[str, dict[str, Callable[[], Any]]], rounds: int, seconds: float
) -> dict[str, dict[str, list[float]]]:
    """Per-call seconds per round for every case x variant; variants interleave in each round.

    The variant order rotates every round, so none always runs first (cache, clock drift).
    """
    numbers = {
        case: {variant: calibrate(fn, seconds) for variant, fn in fns.items()}
        for case, fns in cases.items()
    }
    samples: dict[str, dict[str, list[float]]] = {
        case: {variant: [] for variant in fns} for case, fns in cases.items()
    }
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does
    try:
        for index in range(rounds):
            for case, fns in cases.items():
                order = list(fns)
                order = order[index % len(order) :] + order[: index % len(order)]
                for variant in order:
                    samples[case][variant].append(
                        per_call_seconds(fns[variant], numbers[case][variant])
                    )
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def iqr(values: list[float]) -> float:
    low, high = np.percentile(values, [25, 75])
    return float(high - low)


def paired_ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """Median of per-round a/b and the share of rounds where a was faster than b."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return {
        "median": statistics.median(ratios),
        "a_faster_share": sum(r < 1 for r in ratios) / len(ratios),
    }
