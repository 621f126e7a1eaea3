"""Each validation rule catches its own defect on a tiny partition (one GX context each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.errors import DataValidationError
from maas.pipeline.validation.run import raise_for_blocking, validate_partitions
from tests.helpers import make_flights
from tests.unit.pipeline.validation_cases import (
    CASES,
    JAN,
    failed,
    run,
    unknown_carrier,
    wind_sensor_error,
)


def test_clean_partition_passes_and_writes_reports(small_params, tmp_path: Path) -> None:
    report = run(make_flights(300), small_params, reports=tmp_path)
    assert report.status == "passed", [o.describe() for o in report.blocking + report.warnings]
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "gx_results.json").is_file()
    assert (tmp_path / "data_docs" / "index.html").is_file()
    raise_for_blocking(report)  # no exception


@pytest.mark.parametrize(
    ("corrupt", "expectation", "column", "severity"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_each_rule_catches_its_defect(small_params, corrupt, expectation, column, severity) -> None:
    report = run(corrupt(make_flights(300)), small_params)
    assert (expectation, column, severity) in failed(report)
    if severity == "block":
        with pytest.raises(DataValidationError) as caught:
            raise_for_blocking(report)
        assert expectation in str(caught.value)
        if column:
            assert column in str(caught.value)
    else:
        assert report.status == "passed_with_warnings"
        raise_for_blocking(report)  # a warning never stops the run


def test_real_sensor_error_is_a_warning_not_a_block(small_params) -> None:
    """The 1048 mph reading: reported, kept in raw data, treated as missing in features."""
    report = run(wind_sensor_error(make_flights(300)), small_params)
    warning = next(o for o in report.warnings if o.column == "wind_speed")
    assert warning.unexpected_count == 1
    assert not report.blocking


def test_extra_columns_warn_and_name_the_column(small_params) -> None:
    report = run(make_flights(300).assign(source_system="feed-b"), small_params)
    assert report.status == "passed_with_warnings"
    (warning,) = report.warnings
    assert warning.expectation == "expect_table_columns_to_match_set"
    assert "source_system" in warning.describe()


def test_a_partition_is_validated_once_per_suite(small_params, tmp_path: Path) -> None:
    """With a cache dir and the partition's sha256, a second run takes the outcomes of the
    first; new bytes, another suite or a torn cache entry mean validating again."""
    validation = small_params.validation.model_copy(update={"cache_dir": tmp_path / "cache"})
    clean, broken = make_flights(300), unknown_carrier(make_flights(300))

    def run_cached(frame, params=validation, sha="a" * 64):
        return validate_partitions([(JAN, frame)], params, small_params.data, None, {JAN.name: sha})

    first = run_cached(broken)
    assert first.cached == [] and first.status == "failed"
    again = run_cached(clean)  # same sha256 claimed: the cached (failing) outcomes come back
    assert again.cached == ["2013-01"]
    assert [o.describe() for o in again.outcomes] == [o.describe() for o in first.outcomes]
    with pytest.raises(DataValidationError, match="carrier"):
        raise_for_blocking(again)
    assert run_cached(clean, sha="b" * 64).cached == []  # new bytes: validated
    stricter = validation.model_copy(update={"unique_key": ["year", "month", "day", "flight"]})
    assert run_cached(clean, params=stricter).cached == []  # another suite: validated
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.write_text("{torn")
    torn = run_cached(clean, sha="b" * 64)
    assert torn.cached == [] and torn.status == "passed"  # unreadable entry: validated again
    assert run_cached(clean, sha="b" * 64).cached == ["2013-01"]  # and rewritten
    no_cache = validation.model_copy(update={"cache_dir": None})
    assert run_cached(clean, params=no_cache).cached == []


def test_a_binary_label_named_by_its_positive_value_has_two_values(small_params) -> None:
    """With `positive`, a third value would silently count as negative: the run stops."""
    from maas.config import LabelSpec

    label = LabelSpec.model_validate({"column": "origin", "positive": "JFK"})
    data = small_params.data.model_copy(update={"label": label})
    report = validate_partitions([(JAN, make_flights(300))], small_params.validation, data)
    assert ("expect_column_unique_value_count_to_be_between", "origin", "block") in failed(report)
    two = make_flights(300).assign(origin=lambda f: f["origin"].where(f["origin"] == "JFK", "EWR"))
    report = validate_partitions([(JAN, two)], small_params.validation, data)
    assert not any(
        e == "expect_column_unique_value_count_to_be_between" for e, _, _ in failed(report)
    )


def test_a_multiclass_value_outside_the_classes_and_a_text_regression_label_block(
    small_params,
) -> None:
    """Each kind's own label check: the class set (numbers read as class names too), and a
    regression label that is a number."""
    from maas.config import LabelSpec

    classes = LabelSpec.model_validate(
        {"column": "origin", "kind": "multiclass", "classes": ["EWR", "JFK", "LGA"]}
    )
    validation = small_params.validation.model_copy(update={"label_rate": None})
    data = small_params.data.model_copy(update={"label": classes})
    clean = validate_partitions([(JAN, make_flights(300))], validation, data)
    assert not any(
        e == "expect_column_values_to_be_in_set" for e, c, _ in failed(clean) if c == "origin"
    )
    odd = make_flights(300).assign(origin=lambda f: f["origin"].where(f.index > 2, "SWF"))
    report = validate_partitions([(JAN, odd)], validation, data)
    assert ("expect_column_values_to_be_in_set", "origin", "block") in failed(report)
    numbered = LabelSpec.model_validate(
        {"column": "month", "kind": "multiclass", "classes": [1, 2, 3]}
    )
    data = small_params.data.model_copy(update={"label": numbered})
    report = validate_partitions([(JAN, make_flights(300))], validation, data)
    assert not any(c == "month" for _, c, _ in failed(report))  # integer 1 is class "1"

    values = LabelSpec.model_validate({"column": "tailnum", "kind": "regression"})
    data = small_params.data.model_copy(update={"label": values})
    report = validate_partitions([(JAN, make_flights(300))], validation, data)
    assert ("expect_column_values_to_be_in_type_list", "tailnum", "block") in failed(report)


def test_unlabeled_rows_are_reported_and_a_spike_of_them_blocks(small_params) -> None:
    """Rows with no label (cancelled flights) are dropped for training: each partition with
    some says so (warn); far more than usual (a broken export) stops the run."""
    expectation = "expect_column_values_to_not_be_null"
    some = make_flights(300).assign(arr_delay=lambda f: f["arr_delay"].where(f.index % 40 > 0))
    report = run(some, small_params)
    assert (expectation, "arr_delay", "warn") in failed(report)
    assert (expectation, "arr_delay", "block") not in failed(report)
    raise_for_blocking(report)  # dropped and counted, not a stop
    spike = make_flights(300).assign(arr_delay=lambda f: f["arr_delay"].where(f.index % 4 > 0))
    assert (expectation, "arr_delay", "block") in failed(run(spike, small_params))
