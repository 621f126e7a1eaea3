"""Time as maas records it: UTC timestamps (audit lines, deploy state, tags) and step timings."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_timestamp(seconds: float | None = None) -> str:
    """`seconds` since the epoch (default: now) as e.g. 2026-11-29T10:15:00Z."""
    return time.strftime(UTC_FORMAT, time.gmtime(seconds))


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the block's wall time in seconds (2 decimals) as `timings[name]`, even on error."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 2)
