"""The shadow step's analysis (issue 30 item 2) on tiny data: the disagreement of two versions'
answers, the checks built from a replay's report (undecided, passed, failed), a candidate
trained on shuffled labels caught, and which of the log's requests are replayed. The replay
itself (a real signed version scoring a real log) is tests/integration/test_shadow.py."""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pytest

from maas.config.kinds import METRICS
from maas.operate.rollout_quality import Difference, quality_drop
from maas.operate.shadow import (
    Disagreement,
    ShadowReport,
    _disagreement_check,
    checks_of,
    disagreement,
)
from maas.operate.shadow import replayed_requests as replayed
from tests.helpers import make_flights
from tests.unit.operate.served_logs import (
    binary_answers,
    flight_params,
    records_of,
    serve,
    true_risk,
)


def report(**changes: object) -> ShadowReport:
    """A replay of 150 requests (1,500 records) that agrees and is as good: every check
    passes; `changes` spoil one part."""
    base = {
        "model": "flights",
        "champion": "1",
        "candidate": "2",
        "since": None,
        "requests": 150,
        "records": 1500,
        "refused": 0,
        "disagreement": Disagreement(1500, 0.03, 0.95),
        "latency_ms": 0.05,
        "labeled": 1500,
    }
    base["quality"] = as_good()
    return ShadowReport(**{**base, **changes})  # type: ignore[arg-type]


@functools.cache
def as_good() -> Difference:
    """The quality of a candidate that answers as the champion does, on 1,500 labeled rows."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1500)
    p = np.clip(y * 0.5 + rng.random(1500) * 0.5, 0, 1)
    return quality_drop(
        METRICS["roc_auc"], "binary", (y, p), (y, p), paired=True, alpha=0.05, resamples=100
    )


def passed(checks: list) -> dict[str, bool | None]:
    return {check.name: check.passed for check in checks}


def test_the_same_answers_disagree_by_nothing() -> None:
    p = np.random.default_rng(0).random(500)
    same = disagreement("binary", p, p.copy())
    assert same.mean_abs_delta == 0 and same.rank_correlation == 1.0 and same.records == 500
    constant = disagreement("binary", np.full(10, 0.2), np.full(10, 0.2))
    assert constant.mean_abs_delta == 0 and constant.rank_correlation == 1.0
    probs = np.random.default_rng(1).dirichlet([1, 1, 1], 400)
    assert disagreement("multiclass", probs, probs.copy()).mean_abs_delta == 0


def test_disagreement_of_each_kind() -> None:
    p = np.linspace(0.1, 0.9, 9)
    moved = disagreement("binary", p, p + 0.05)  # shifted: ranks kept
    assert moved.mean_abs_delta == pytest.approx(0.05) and moved.rank_correlation == 1.0
    reversed_ = disagreement("binary", p, p[::-1])
    assert reversed_.rank_correlation == pytest.approx(-1.0)
    flat = disagreement("binary", p, np.full(9, 0.5))  # a constant ranks nothing
    assert flat.rank_correlation == 0.0
    # one record replayed over and over: the champion ranks nothing either, so only mean |Δ|
    # judges (a float's last digit apart is no disagreement; 0.3 apart is)
    replayed = disagreement("binary", np.full(9, 0.25), np.full(9, 0.25 + 1e-9))
    assert replayed.rank_correlation is None
    check = _disagreement_check("d", replayed, max_delta=0.1, min_rho=0.5)
    assert check.passed is True, check
    far = disagreement("binary", np.full(9, 0.25), np.full(9, 0.55))
    assert _disagreement_check("d", far, max_delta=0.1, min_rho=0.5).passed is False
    values = np.array([10.0, 20.0, 30.0, 40.0])
    scaled = disagreement("regression", values, values + np.std(values))  # off by one std
    assert scaled.mean_abs_delta == pytest.approx(1.0)
    champion = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    flipped = champion.copy()
    flipped[3] = [0.3, 0.6, 0.1]  # one of four records changes class
    flips = disagreement("multiclass", champion, flipped)
    assert flips.mean_abs_delta == 0.25 and flips.rank_correlation is None


def test_checks_pass_for_an_agreeing_candidate_as_good_as_the_champion() -> None:
    checks = checks_of(report())
    assert passed(checks) == {
        "shadow_replay": True,
        "shadow_disagreement": True,
        "shadow_quality": True,
    }
    replay = checks[0]
    assert replay.numbers["latency_ms_per_record"] == 0.05 and replay.numbers["requests"] == 150
    assert "0 of 1500 records refused" in replay.reason


def test_too_few_replayed_requests_or_labels_leave_the_checks_undecided() -> None:
    few = checks_of(report(requests=40), min_requests=100)
    assert set(passed(few).values()) == {None}
    assert "40 replayed requests < 100: waiting for traffic" in few[0].reason
    unlabeled = checks_of(report(labeled=120, quality=None))
    assert passed(unlabeled)["shadow_quality"] is None
    assert passed(unlabeled)["shadow_disagreement"] is True


def test_each_check_fails_on_its_own_breach() -> None:
    refusing = checks_of(report(refused=60))  # 4% would get a 400
    assert passed(refusing) == {
        "shadow_replay": False,
        "shadow_disagreement": True,
        "shadow_quality": True,
    }
    far = checks_of(report(disagreement=Disagreement(1500, 0.3, 0.9)), max_disagreement=0.15)
    assert passed(far)["shadow_disagreement"] is False and "mean |Δ| 0.3000" in far[1].reason
    reordered = checks_of(report(disagreement=Disagreement(1500, 0.05, 0.2)))
    assert passed(reordered)["shadow_disagreement"] is False
    silent = checks_of(report(refused=1500, disagreement=None))
    assert passed(silent)["shadow_disagreement"] is False
    assert "answered none of the replayed records" in silent[1].reason


def test_a_candidate_trained_on_shuffled_labels_is_caught() -> None:
    """Two logistic regressions on the same November flights, one on shuffled labels, both
    answering December's: the replay's checks fail it on disagreement and on quality."""
    from sklearn.linear_model import LogisticRegression

    features = ["sched_dep_time", "precip", "distance"]
    train = make_flights(2000, month=11, seed=21)
    served = make_flights(1500, month=12, seed=22)
    y_train = (train["arr_delay"] >= 15).to_numpy(int)
    y_served = (served["arr_delay"] >= 15).to_numpy(int)
    shuffled = np.random.default_rng(5).permutation(y_train)
    x_train, x_served = train[features].to_numpy(float), served[features].to_numpy(float)
    scale = x_train.std(axis=0)
    champion = LogisticRegression().fit(x_train / scale, y_train)
    candidate = LogisticRegression().fit(x_train / scale, shuffled)
    p_champion = champion.predict_proba(x_served / scale)[:, 1]
    p_candidate = candidate.predict_proba(x_served / scale)[:, 1]
    found = report(
        disagreement=disagreement("binary", p_champion, p_candidate),
        quality=quality_drop(
            METRICS["roc_auc"],
            "binary",
            (y_served, p_champion),
            (y_served, p_candidate),
            paired=True,
            alpha=0.05,
            resamples=200,
        ),
    )
    checks = checks_of(found)
    assert passed(checks)["shadow_quality"] is False, checks[2].reason
    assert passed(checks)["shadow_disagreement"] is False, checks[1].reason
    again = checks_of(
        report(
            disagreement=disagreement("binary", p_champion, p_champion),
            quality=quality_drop(
                METRICS["roc_auc"],
                "binary",
                (y_served, p_champion),
                (y_served, p_champion),
                paired=True,
                alpha=0.05,
                resamples=100,
            ),
        )
    )
    assert set(passed(again).values()) == {True}  # the champion against itself


def test_the_champions_newest_requests_are_replayed(tmp_path) -> None:
    params = flight_params(tmp_path)
    frame = make_flights(300, month=12, seed=4)
    old, new = frame.iloc[:100], frame.iloc[100:250]
    serve(params, "1", records_of(old, params), binary_answers(params, true_risk(old)))
    since = dt.datetime.now(dt.UTC)
    serve(params, "1", records_of(new, params), binary_answers(params, true_risk(new)))
    other = frame.iloc[250:]  # the candidate's own canary traffic: not the champion's
    serve(params, "2", records_of(other, params), binary_answers(params, true_risk(other)))
    everything = replayed(params, "1", None, 1000)
    assert len(everything) == 250 and set(everything["model_version"]) == {"1"}
    assert everything["flight"].tolist() == frame["flight"].iloc[:250].tolist()
    recent = replayed(params, "1", since, 1000)
    assert recent["flight"].tolist() == new["flight"].tolist()
    newest = replayed(params, "1", None, 3)  # 3 requests of 10 records
    assert newest["flight"].tolist() == frame["flight"].iloc[220:250].tolist()
    assert newest["request_id"].nunique() == 3
    assert replayed(params, "7", None, 10).empty


def test_a_field_sent_as_a_number_and_as_a_string_is_replayed_as_strings() -> None:
    """What clients sent is kept as sent: Parquet needs one type per column."""
    import pandas as pd
    import pyarrow as pa

    from maas.operate.shadow import _uniform

    logged = pd.DataFrame({"carrier": ["AA", 9, None], "distance": [100, 200, None]})
    table = pa.Table.from_pandas(_uniform(logged), preserve_index=False)
    assert table.column("carrier").to_pylist() == ["AA", "9", None]
    assert table.column("distance").to_pylist() == [100.0, 200.0, None]
