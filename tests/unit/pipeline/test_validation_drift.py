"""validation.drift: a partition whose column moved far from the month before (a unit change)
blocks; one drawn from the same distribution passes; outcomes are cached per pair of partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.errors import DataValidationError
from maas.pipeline.data.partitions import Partition, period_bounds
from maas.pipeline.validation.run import raise_for_blocking, validate_partitions
from tests.helpers import make_flights

DEC, JAN = (
    Partition(name, Path(f"{name}.parquet"), *period_bounds(name, "month"))
    for name in ("2012-12", "2013-01")
)


def _frames(january):
    return [(DEC, make_flights(2000, 2012, 12, seed=1)), (JAN, january)]


def _validate(params, frames, shas=None, reports=None, **drift):
    validation = params.validation
    if drift:
        rule = validation.drift.model_copy(update=drift)
        validation = validation.model_copy(update={"drift": rule})
    return validate_partitions(frames, validation, params.data, reports, shas)


def test_a_unit_change_blocks_and_a_month_like_the_last_passes(small_params, tmp_path) -> None:
    january = make_flights(2000, seed=2)
    clean = _validate(small_params, _frames(january), reports=tmp_path)
    drift = [o for o in clean.outcomes if o.expectation == "drift_from_previous_partition"]
    assert {o.partition for o in drift} == {"2013-01"}  # the first has nothing before it
    assert {o.column for o in drift} == set(small_params.validation.drift.thresholds)
    assert all(o.success for o in drift), [o.describe() for o in drift if not o.success]
    assert (tmp_path / "drift" / "2013-01.json").is_file()
    assert not (tmp_path / "drift" / "2013-01.html").exists()  # the report only for a failure

    celsius = january.assign(temp=(january["temp"] - 32) * 5 / 9)
    report = _validate(small_params, _frames(celsius), reports=tmp_path)
    (failed,) = [o for o in report.blocking if o.expectation == "drift_from_previous_partition"]
    assert (failed.partition, failed.column) == ("2013-01", "temp")
    assert "against 2012-12" in failed.describe() and "threshold 3" in failed.describe()
    assert (tmp_path / "drift" / "2013-01.html").stat().st_size > 10_000  # Evidently's report
    assert "1 partition(s) scored, 1 column(s) over their threshold" in report.to_markdown()
    with pytest.raises(DataValidationError, match="drift_from_previous_partition column=temp"):
        raise_for_blocking(report)
    warned = _validate(small_params, _frames(celsius), severity="warn")
    assert "temp" in {o.column for o in warned.warnings if "drift" in o.expectation}
    assert not [o for o in warned.blocking if "drift" in o.expectation]
    off = _validate(small_params, _frames(celsius), thresholds={})
    assert not [o for o in off.outcomes if "drift" in o.expectation]


def test_drift_outcomes_are_cached_per_pair_of_partitions(small_params, tmp_path: Path) -> None:
    validation = small_params.validation.model_copy(update={"cache_dir": tmp_path / "cache"})
    params = small_params.model_copy(update={"validation": validation})
    january = make_flights(2000, seed=2)
    celsius = january.assign(temp=(january["temp"] - 32) * 5 / 9)
    shas = {"2012-12": "a" * 64, "2013-01": "b" * 64}

    def drifted(report):
        return [o.column for o in report.blocking if "drift" in o.expectation]

    assert drifted(_validate(params, _frames(celsius), shas)) == ["temp"]
    again = _validate(params, _frames(january), shas)  # same bytes claimed: the cached outcome
    assert again.cached == ["2012-12", "2013-01"] and drifted(again) == ["temp"]
    reports = tmp_path / "reports"  # the cached failure still comes with Evidently's report
    _validate(params, _frames(january), shas, reports=reports)
    assert (reports / "drift" / "2013-01.html").stat().st_size > 10_000
    other_december = {**shas, "2012-12": "c" * 64}  # the month before changed: scored again
    assert drifted(_validate(params, _frames(january), other_december)) == []
    for entry in (tmp_path / "cache").glob("2013-01-drift-*.json"):  # another format's entry
        entry.write_text('{"outcomes": [{"column": "temp"}], "result": {}}')
    assert drifted(_validate(params, _frames(celsius), shas)) == ["temp"]  # scored again
    looser = {**params.validation.drift.thresholds, "temp": 100.0}  # another rule: scored again,
    report = _validate(params, _frames(celsius), shas, thresholds=looser)  # the suite's cached
    assert drifted(report) == [] and report.cached == ["2012-12", "2013-01"]


def test_a_column_missing_from_a_partition_is_not_scored(small_params) -> None:
    january = make_flights(2000, seed=2).assign(temp=float("nan"))
    report = _validate(small_params, _frames(january))
    temp = next(o for o in report.outcomes if o.column == "temp" and "drift" in o.expectation)
    assert temp.success and "not scored against 2012-12" in temp.describe()
