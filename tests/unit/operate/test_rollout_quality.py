"""A rollout step's quality analysis on live traffic (issue 30 item 4), on tiny prediction logs
written by the real writer and labels arriving as a partition: undecided below the minimum
sample, passed for a candidate as good as the champion, failed for a worse one, and each
version judged on the records of the window it answered."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from maas.config.kinds import METRICS, metric_names
from maas.operate.rollout_quality import live_quality_checks, prediction_shift, quality_check
from maas.pipeline.evaluation.difference import Difference, metric_value, quality_drop
from maas.pipeline.evaluation.metrics import compute_metrics
from tests.helpers import make_flights
from tests.unit.operate.served_logs import (
    arrive_labels,
    binary_answers,
    flight_params,
    records_of,
    serve,
    true_risk,
)

HOUR = dt.timedelta(hours=1)


def test_each_metric_is_the_one_the_gate_computes() -> None:
    """One metric at a time (the bootstrap's) agrees with compute_metrics for every kind."""
    rng = np.random.default_rng(0)
    y2, p2 = rng.integers(0, 2, 300), rng.random(300)
    y3 = rng.integers(0, 3, 300)
    p3 = rng.dirichlet([1, 1, 1], 300)
    yr, pr = rng.normal(size=300), rng.normal(size=300)
    for kind, y, p in (("binary", y2, p2), ("multiclass", y3, p3), ("regression", yr, pr)):
        expected = compute_metrics(y, p, kind)
        for name in metric_names(kind):
            assert metric_value(name, kind, y, p) == pytest.approx(expected[name], rel=1e-12)


def test_a_paired_drop_of_the_same_answers_is_zero_and_a_worse_one_fails() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.random(400) * 0.4, 0, 1)  # ranks most rows right
    same = quality_drop(
        METRICS["roc_auc"],
        "binary",
        (y, good),
        (y, good.copy()),
        paired=True,
        alpha=0.05,
        resamples=200,
    )
    assert same.drop == 0 and same.low == 0 and same.high == 0
    check = quality_check("q", same, 400, min_samples=200, max_drop=0.02)
    assert check.passed is True and check.numbers["drop"] == 0
    worse = quality_drop(
        METRICS["roc_auc"],
        "binary",
        (y, good),
        (y, rng.random(400)),
        paired=True,
        alpha=0.05,
        resamples=200,
    )
    assert worse.drop > 0.3 and worse.low > 0.02  # a coin is much worse, significantly
    failed = quality_check("q", worse, 400, min_samples=200, max_drop=0.02)
    assert failed.passed is False and "roc_auc" in failed.reason
    assert quality_check("q", worse, 150, min_samples=200, max_drop=0.02).passed is None


def test_an_interval_that_straddles_the_margin_passes_and_one_above_fails() -> None:
    """The rule: failed only when the drop's lower bound is beyond the margin."""
    straddles = Difference("roc_auc", 0.70, 0.66, 0.04, -0.01, 0.09, 300, 300)
    above = Difference("roc_auc", 0.70, 0.60, 0.10, 0.05, 0.15, 300, 300)
    undefined = Difference("roc_auc", 0.70, 0.60, 0.10, float("nan"), float("nan"), 300, 300)
    assert quality_check("q", straddles, 300, min_samples=200, max_drop=0.02).passed is True
    assert quality_check("q", above, 300, min_samples=200, max_drop=0.02).passed is False
    assert quality_check("q", undefined, 300, min_samples=200, max_drop=0.02).passed is None
    lower_is_better = quality_drop(
        METRICS["rmse"],
        "regression",
        (np.arange(50.0), np.arange(50.0) + 1),  # champion off by 1
        (np.arange(50.0), np.arange(50.0) + 3),  # candidate off by 3: worse by 2
        paired=True,
        alpha=0.05,
        resamples=200,
    )
    assert lower_is_better.drop == pytest.approx(2.0)


@pytest.fixture
def traffic(tmp_path):
    """1,200 December flights, served half by the champion v1 (the true risk) and half by a
    candidate v2, the labels of the month arrived."""
    params = flight_params(tmp_path)
    frame = make_flights(1200, month=12, seed=11)
    arrive_labels(params, frame)
    return params, frame


def test_a_candidate_as_good_as_the_champion_passes(traffic) -> None:
    params, frame = traffic
    champion, candidate = frame.iloc[:600], frame.iloc[600:]
    serve(params, "1", records_of(champion, params), binary_answers(params, true_risk(champion)))
    serve(params, "2", records_of(candidate, params), binary_answers(params, true_risk(candidate)))
    now = dt.datetime.now(dt.UTC)
    shift, quality = live_quality_checks(params, "1", "2", now - HOUR, now + HOUR, resamples=300)
    assert shift.name == "prediction_shift" and shift.passed is True
    assert shift.numbers["champion_rows"] == 600 and shift.numbers["candidate_rows"] == 600
    assert quality.name == "realized_quality" and quality.passed is True, quality.reason
    assert quality.numbers["champion_rows"] == 600 and quality.numbers["candidate_rows"] == 600
    assert abs(quality.numbers["drop"]) < 0.05


def test_a_worse_candidate_fails_on_quality_and_a_shifted_one_on_its_predictions(
    traffic,
) -> None:
    params, frame = traffic
    champion, candidate = frame.iloc[:600], frame.iloc[600:]
    serve(params, "1", records_of(champion, params), binary_answers(params, true_risk(champion)))
    noise = np.random.default_rng(3).random(len(candidate))  # right on average, ranks nothing
    serve(params, "2", records_of(candidate, params), binary_answers(params, noise))
    now = dt.datetime.now(dt.UTC)
    shift, quality = live_quality_checks(params, "1", "2", now - HOUR, now + HOUR, resamples=300)
    assert quality.passed is False and quality.numbers["drop_low"] > 0.02, quality.reason
    assert shift.passed is False and shift.numbers["p_value"] < 0.05  # uniform vs the risk
    assert shift.numbers["shift"] > 0.2


def test_too_few_records_or_labels_leave_the_checks_undecided(traffic) -> None:
    params, frame = traffic
    serve(
        params,
        "1",
        records_of(frame.iloc[:600], params),
        binary_answers(params, true_risk(frame.iloc[:600])),
    )
    few = frame.iloc[600:650]
    serve(params, "2", records_of(few, params), binary_answers(params, np.zeros(len(few))))
    now = dt.datetime.now(dt.UTC)
    checks = live_quality_checks(params, "1", "2", now - HOUR, now + HOUR, min_samples=200)
    assert [check.passed for check in checks] == [None, None]
    assert "50 candidate / 600 champion records < 200" in checks[0].reason
    (params.data.raw_dir / "2013-12.parquet").unlink()  # no label has arrived
    more = frame.iloc[650:1000]
    serve(params, "2", records_of(more, params), binary_answers(params, true_risk(more)))
    shift, quality = live_quality_checks(params, "1", "2", now - HOUR, now + HOUR, resamples=100)
    assert shift.passed is True and quality.passed is None
    assert "0 labeled rows < 200: waiting for labels" in quality.reason


def test_only_the_window_counts(traffic) -> None:
    """Records served before `since` (here: a bad candidate's) are not judged."""
    params, frame = traffic
    bad = frame.iloc[600:900]
    serve(params, "2", records_of(bad, params), binary_answers(params, np.zeros(len(bad))))
    since = dt.datetime.now(dt.UTC)
    champion, good = frame.iloc[:600], frame.iloc[900:]
    serve(params, "1", records_of(champion, params), binary_answers(params, true_risk(champion)))
    serve(params, "2", records_of(good, params), binary_answers(params, true_risk(good)))
    shift, quality = live_quality_checks(
        params, "1", "2", since, since + HOUR, min_samples=100, resamples=300
    )
    assert shift.numbers["candidate_rows"] == 300 and shift.passed is True
    assert quality.numbers["candidate_rows"] == 300 and quality.passed is True, quality.reason
    with pytest.raises(ValueError, match="since must precede until"):
        live_quality_checks(params, "1", "2", since, since)
    naive = since.replace(tzinfo=None)  # read as UTC
    again = live_quality_checks(
        params, "1", "2", naive, naive + HOUR, min_samples=100, resamples=100
    )
    assert again[0].numbers == shift.numbers


def test_an_empty_log_is_undecided(tmp_path) -> None:
    params = flight_params(tmp_path)
    now = dt.datetime.now(dt.UTC)
    checks = live_quality_checks(params, "1", "2", now - HOUR, now)
    assert [check.passed for check in checks] == [None, None]
    assert pd.isna(checks[0].numbers.get("shift", np.nan))


def test_multiclass_predictions_are_compared_by_their_class_shares(tmp_path) -> None:
    """Chi-square on the predicted classes, the total variation distance as the effect."""
    base = flight_params(tmp_path)
    label = base.data.label.model_copy(
        update={"kind": "multiclass", "classes": ["calm", "busy", "packed"]}
    )
    params = base.model_copy(update={"data": base.data.model_copy(update={"label": label})})
    column = params.serving.outputs.predicted_class
    rng = np.random.default_rng(2)

    def served(shares: list[float], n: int = 800) -> pd.DataFrame:
        return pd.DataFrame({column: rng.choice(["calm", "busy", "packed"], n, p=shares)})

    champion = served([0.5, 0.3, 0.2])
    alike = prediction_shift(
        params, champion, served([0.5, 0.3, 0.2]), min_samples=200, alpha=0.05, max_shift=0.2
    )
    assert alike.passed is True and alike.numbers["shift"] < 0.1
    moved = prediction_shift(
        params, champion, served([0.1, 0.3, 0.6]), min_samples=200, alpha=0.05, max_shift=0.2
    )
    assert moved.passed is False and moved.numbers["shift"] == pytest.approx(0.4, abs=0.06)
    assert "chi-square" in moved.reason
    small = prediction_shift(
        params, champion, served([0.1, 0.3, 0.6], 50), min_samples=200, alpha=0.05, max_shift=0.2
    )
    assert small.passed is None
