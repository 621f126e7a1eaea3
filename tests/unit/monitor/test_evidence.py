"""Periods of served records, the join of logged predictions with late labels, and the
monitoring policy (thresholds, cooldown)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from maas.config import Params
from maas.monitor.evidence import join_labels, rescored, served_periods
from maas.monitor.policy import judge, may_retrain


def _served(days: list[int], probability: list[float]) -> pd.DataFrame:
    n = len(days)
    return pd.DataFrame(
        {
            "year": 2013,
            "month": 7,
            "day": days,
            "carrier": "UA",
            "flight": range(100, 100 + n),
            "origin": "EWR",
            "sched_dep_time": 905,
            "delay_probability": probability,
            "request_id": [f"r{i}" for i in range(n)],
            "model_version": "1",
            "logged_at": pd.Timestamp("2026-11-30T10:00:00Z"),
        }
    )


def test_a_record_belongs_to_its_own_time_else_to_when_it_was_served(params: Params) -> None:
    rows = _served([1, 2], [0.1, 0.9])
    assert served_periods(rows, params).tolist() == ["2013-07", "2013-07"]
    assert served_periods(rows.drop(columns=["day"]), params).tolist() == ["2026-11", "2026-11"]


def test_logged_predictions_are_joined_with_late_labels_by_the_task_key(params: Params) -> None:
    served = _served([1, 2, 3, 4], [0.9, 0.2, 0.8, 0.3])
    labels = served[["year", "month", "day", "carrier", "flight", "origin"]].iloc[:3].copy()
    labels["flight"] = labels["flight"].astype(float)  # 100.0 and 100 are one key
    labels["arr_delay"] = [40.0, -5.0, np.nan]  # delayed, on time, unlabeled (cancelled)
    realized = join_labels(served, labels, params)
    assert realized is not None and realized.source == "logged"
    assert realized.rows == 2 and realized.unlabeled == 1
    assert realized.unmatched == 1  # flight 103 was served; no label row arrived for it
    assert realized.metrics["roc_auc"] == 1.0


def test_labels_with_no_matching_prediction_are_not_a_join(params: Params) -> None:
    served = _served([1, 2], [0.9, 0.2])
    labels = served[["year", "month", "day", "carrier", "flight", "origin"]].copy()
    labels["flight"] += 50
    labels["arr_delay"] = [40.0, -5.0]
    assert join_labels(served, labels, params) is None  # the flow re-scores the partition
    assert join_labels(served.drop(columns=["flight"]), labels, params) is None  # no key sent
    realized = rescored(labels, np.array([0.7, 0.1]), params)
    assert realized.source == "rescored" and realized.metrics["roc_auc"] == 1.0


def _period(share: float, auc: float, rows: int = 500) -> dict:
    return {
        "champion": "2",
        "served_drift": {"share": share, "drifted": ["temp"], "rows": [3000, rows]},
        "realized": {"rows": rows, "metrics": {"roc_auc": auc}},
        "registered": {"metric": "roc_auc", "value": 0.70},
    }


def test_the_policy_names_each_breach(params: Params) -> None:
    policy = params.monitoring  # drift_share 0.5, metric_drop 0.03, min_rows 200
    assert not judge(_period(0.2, 0.69), policy).breach
    verdict = judge(_period(0.6, 0.66), policy)
    assert verdict.judged and len(verdict.breaches) == 2
    assert verdict.breaches[0].startswith("served inputs drifted: 60%")
    assert verdict.breaches[1].startswith("v2's realized roc_auc 0.6600 is 0.0400 below its")
    few = judge(_period(0.9, 0.5, rows=50), policy)
    assert not few.judged and not few.breach  # too few rows to judge


def test_retraining_waits_for_the_cooldown(params: Params) -> None:
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    off = params.monitoring
    assert may_retrain(off, None, now) == "monitoring.retrain is off"
    on = off.model_copy(update={"retrain": True, "cooldown_h": 24})
    assert may_retrain(on, None, now) is None
    waiting = may_retrain(on, "2026-11-30T00:00:00+00:00", now)
    assert waiting == "cooling down: last retraining 12.0 h ago (< 24 h)"
    assert may_retrain(on, "2026-11-29T11:00:00Z", now) is None
    stale = may_retrain(on, None, now, newest="2013-07", seen="2013-07")  # nothing new to learn
    assert stale == "no partition arrived after 2013-07, the newest the champion has seen"
    assert may_retrain(on, None, now, newest="2013-08", seen="2013-07") is None


BAD = [
    "monitoring.drift_share=0",
    "monitoring.min_rows=0",
    "monitoring.unknown=1",
    "monitoring.log_max_bytes=10",
]


@pytest.mark.parametrize("bad", BAD)
def test_bad_monitoring_params_are_named(bad: str) -> None:
    from maas.config import ConfigError, load_params
    from tests.helpers import ROOT

    with pytest.raises(ConfigError, match="monitoring"):
        load_params(ROOT / "params.yaml", [bad])


def test_each_version_is_judged_on_its_own_rows_against_its_own_metric(params: Params) -> None:
    """Issue 29.4: a period served by v1 (registered 0.80, now poor) and then by v2 (registered
    0.70, holding up): v1's rows are v1's breach, never v2's, and v2 is judged on its own."""
    from maas.monitor.evidence import realized_by_version

    # v1 ranks them backwards, v2 right
    served = _served([1] * 8, [0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.8, 0.2])
    served["model_version"] = ["1"] * 4 + ["2"] * 4
    labels = served[["year", "month", "day", "carrier", "flight", "origin"]].copy()
    labels["arr_delay"] = [30.0, 0.0, 30.0, 0.0] * 2
    own = realized_by_version(served, labels, params)
    assert sorted(own) == ["1", "2"] and all(r.rows == 4 for r in own.values())
    assert own["1"].metrics["roc_auc"] == 0.0 and own["2"].metrics["roc_auc"] == 1.0
    period = {
        "champion": "2",
        "realized": {**own["2"].summary()},
        "registered": {"metric": "roc_auc", "value": 0.70},
        "realized_by_version": {
            version: {**found.summary(), "registered": {"metric": "roc_auc", "value": value}}
            for (version, found), value in zip(sorted(own.items()), (0.80, 0.70), strict=True)
        },
    }
    policy = params.monitoring.model_copy(update={"min_rows": 4})
    verdict = judge(period, policy)
    assert verdict.breaches == [
        "v1's realized roc_auc 0.0000 is 0.8000 below its registered 0.8000 (> 0.03)"
    ]


def test_realized_quality_counts_unlabeled_rows_as_the_gate_did(params: Params) -> None:
    """Issue 29.15: with `unlabeled: positive` (a cancelled flight counts as delayed) the gate
    scored unlabeled rows as positive; realized quality dropped them. One rule now."""
    label = params.data.label.model_copy(update={"unlabeled": "positive"})
    positive = params.model_copy(update={"data": params.data.model_copy(update={"label": label})})
    served = _served([1, 2, 3], [0.9, 0.2, 0.8])
    labels = served[["year", "month", "day", "carrier", "flight", "origin"]].copy()
    labels["arr_delay"] = [40.0, -5.0, np.nan]  # the third was cancelled
    dropped, counted = (join_labels(served, labels, p) for p in (params, positive))
    assert dropped is not None and dropped.rows == 2 and dropped.unlabeled == 1
    assert counted is not None and counted.rows == 3 and counted.unlabeled == 0
    assert rescored(labels, np.array([0.9, 0.2, 0.8]), positive).rows == 3
