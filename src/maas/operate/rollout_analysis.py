"""A rollout step's health analysis: the candidate next to the champion in the same window.

Errors: the gateway's per-server counters (5xx answers, failed connections and responses),
tested with a one-sided Fisher exact test: errors are rare and a 5% step sees few requests, so
a normal approximation (the two-proportion z-test) is wrong exactly where it matters, and the
exact test needs no minimum count. The check fails only when the increase is both significant
(p < alpha) and larger than `max_error_rate_increase`; it passes once the candidate answered
`min_requests` without that. Each pass looks again: before `min_requests` a check fails
only at a 100 times stricter level (`EARLY`), so repeated looks do not add up to rollbacks
on noise while a plainly broken version still fails within a few requests. Latency: each
version's `/predict` durations from the services' own Prometheus histograms (BentoML's
`*_request_duration_seconds`), interpolated within a bucket as Prometheus'
`histogram_quantile` does, judged by a one-sided binomial test of the share of the
candidate's requests slower than the bound (`latency_check`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from maas.config.rollout import RolloutParams
from maas.operate.rollout_types import Check

# A controller pass tests the step's growing sample again and again: each look at `alpha`
# would add up to far more false rollbacks than `alpha`. Before the sample is complete a
# check fails only at alpha x EARLY (a plainly broken version); at `min_requests`, at alpha.
EARLY = 0.01
DURATION = "request_duration_seconds"  # BentoML's histogram: <namespace>_request_duration_seconds
ENDPOINT = "/predict"


def error_check(
    candidate: tuple[int, int], champion: tuple[int, int], settings: RolloutParams
) -> Check:
    """(requests, errors) of each version in the window -> the error-rate check."""
    from scipy.stats import fisher_exact

    n_c, e_c = candidate
    n_0, e_0 = champion
    rate_c = e_c / n_c if n_c else 0.0
    rate_0 = e_0 / n_0 if n_0 else 0.0
    increase = rate_c - rate_0
    p_value = 1.0
    if n_c and n_0:
        table = [[e_c, n_c - e_c], [e_0, n_0 - e_0]]
        p_value = float(fisher_exact(table, alternative="greater").pvalue)
    numbers = {
        "candidate_requests": float(n_c),
        "candidate_errors": float(e_c),
        "champion_requests": float(n_0),
        "champion_errors": float(e_0),
        "increase": increase,
        "p_value": p_value,
    }
    said = (
        f"error rate {rate_c:.2%} ({e_c}/{n_c}) vs the champion's {rate_0:.2%} ({e_0}/{n_0}), "
        f"one-sided Fisher p={p_value:.3g}"
    )
    complete = n_c >= settings.min_requests and n_0 > 0
    level = settings.alpha if complete else settings.alpha * EARLY
    if p_value < level and increase > settings.max_error_rate_increase:
        return Check("errors", False, f"{said} < {level:.2g}", numbers)
    if not complete:
        return Check("errors", None, f"{said}; waiting for {settings.min_requests}", numbers)
    return Check("errors", True, said, numbers)


def latency_check(
    candidate: Mapping[str, float], champion: Mapping[str, float], settings: RolloutParams
) -> Check:
    """Each version's `/predict` duration histogram in the window (bucket bound -> count,
    cumulative, as Prometheus keeps it) -> the p99 check.

    The bound is `max_p99_ms` and `max_p99_ratio` x the champion's p99 (the lower one). A p99
    of a few dozen requests is nearly their maximum, so comparing two p99s rolls back on
    noise; instead: if the candidate's p99 were within the bound, at most 1% of its requests
    would be slower than it, and a one-sided binomial test asks whether the share slower is
    significantly more (at `alpha`). A plainly slow version fails on few requests; one as
    fast as the champion passes once it answered `min_requests`."""
    from scipy.stats import binomtest

    n_c, n_0 = candidate.get("+Inf", 0.0), champion.get("+Inf", 0.0)
    p99_c, p99_0 = quantile(0.99, candidate), quantile(0.99, champion)
    numbers = {"candidate_p99_ms": p99_c * 1000, "champion_p99_ms": p99_0 * 1000}
    numbers |= {"candidate_timed": n_c, "champion_timed": n_0}
    said = f"p99 {p99_c * 1000:.0f} ms ({n_c:.0f} timed) vs the champion's {p99_0 * 1000:.0f} ms"
    bounds = []
    if settings.max_p99_ms is not None:
        bounds.append((settings.max_p99_ms / 1000, f"max_p99_ms {settings.max_p99_ms:g}"))
    ratio = settings.max_p99_ratio
    if ratio is not None and n_0 >= settings.min_requests and not math.isnan(p99_0):
        bounds.append((ratio * p99_0, f"{ratio:g} x the champion's p99"))
    if n_c < 1 or not bounds:
        passed = None if n_c < settings.min_requests else True
        return Check("latency", passed, f"{said}; no bound to judge it by yet", numbers)
    bound, name = min(bounds)
    slower = round(n_c - cumulative(bound, candidate))
    p_value = float(binomtest(max(slower, 0), round(n_c), 0.01, alternative="greater").pvalue)
    numbers |= {"bound_ms": bound * 1000, "slower": float(slower), "p_value": p_value}
    said += f"; {slower} slower than {bound * 1000:.0f} ms ({name}), binomial p={p_value:.3g}"
    complete = n_c >= settings.min_requests
    level = settings.alpha if complete else settings.alpha * EARLY
    if p_value < level:
        return Check("latency", False, f"{said} < {level:.2g}", numbers)
    if not complete:
        return Check("latency", None, f"{said}; waiting for {settings.min_requests}", numbers)
    return Check("latency", True, said, numbers)


def duration_check(elapsed_s: float, settings: RolloutParams) -> Check:
    """A step lasts at least `min_seconds`, whatever its sample."""
    passed = True if elapsed_s >= settings.min_seconds else None
    said = f"{elapsed_s:.0f} s of at least {settings.min_seconds:.0f} s"
    return Check("duration", passed, said, {"elapsed_s": elapsed_s})


def quantile(q: float, buckets: Mapping[str, float]) -> float:
    """The `q` quantile of a cumulative histogram (upper bound -> count, `+Inf` included),
    linearly interpolated within its bucket; NaN when it holds nothing. A quantile in the
    last, unbounded bucket is the highest finite bound (as Prometheus answers)."""
    bounds = sorted((float(bound), count) for bound, count in buckets.items())
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def cumulative(x: float, buckets: Mapping[str, float]) -> float:
    """How many observations of a cumulative histogram are at most `x`, linearly
    interpolated within its bucket (beyond the last finite bound: those within it)."""
    lower, below = 0.0, 0.0
    for bound, count in sorted((float(b), c) for b, c in buckets.items()):
        if math.isinf(bound):
            return below
        if x <= bound:
            return (
                below + (count - below) * (x - lower) / (bound - lower) if bound > lower else count
            )
        lower, below = bound, count
    return below


def parse_histogram(text: str) -> dict[str, float]:
    """The `/predict` request-duration histogram in a service's `/metrics` text, summed over
    its response codes: bucket bound -> cumulative count."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.endswith(DURATION):
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("endpoint") == ENDPOINT:
                bound = sample.labels["le"]
                bound = "+Inf" if bound in ("+Inf", "inf") else str(float(bound))
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def add_histograms(histograms: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for histogram in histograms:
        for bound, count in histogram.items():
            total[bound] = total.get(bound, 0.0) + count
    return total


def subtract(now: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """What a cumulative histogram gained since `before`; a service restarted meanwhile (its
    counts went down) counts from zero."""
    if any(now.get(bound, 0.0) < count for bound, count in before.items()):
        return dict(now)
    return {bound: count - before.get(bound, 0.0) for bound, count in now.items()}
