"""The screen (validation/screen.py) changes how long validation takes, never its outcomes: every
partition's outcomes are those of running the whole suite on it, byte for byte."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maas.pipeline.data.partitions import Partition, period_bounds
from maas.pipeline.validation.batch import prepare_batch
from maas.pipeline.validation.run import validate_partitions
from maas.pipeline.validation.screen import screened, stack
from maas.pipeline.validation.suite import build_expectations
from tests.helpers import make_flights
from tests.unit.pipeline.validation_cases import (
    drop_column,
    month_out_of_range,
    null_carrier,
    unknown_carrier,
    wrong_type,
)


def month(number: int) -> Partition:
    name = f"2013-{number:02d}"
    return Partition(name, Path(f"{name}.parquet"), *period_bounds(name, "month"))


def months(*corrupt) -> list[tuple[Partition, pd.DataFrame]]:
    """One partition per entry (Jan, Feb, ...), each a clean month passed through its entry."""
    return [
        (month(i), (fix or (lambda f: f))(make_flights(300, month=i, seed=i)))
        for i, fix in enumerate(corrupt, start=1)
    ]


def arr_delay_spike(f: pd.DataFrame) -> pd.DataFrame:
    """A quarter of the labels missing: fails the `mostly: 1.0` (warn, screened) null check
    and the `mostly: 0.9` (block, never screened) one."""
    return f.assign(arr_delay=f["arr_delay"].where(f.index % 4 > 0))


def few_missing_labels(f: pd.DataFrame) -> pd.DataFrame:
    """2.5% of the labels missing: the `mostly: 0.9` check passes with unexpected rows."""
    return f.assign(arr_delay=f["arr_delay"].where(f.index % 40 > 0))


def no_temperature(f: pd.DataFrame) -> pd.DataFrame:
    """A float column with no value: its range check judges no row (no percentage)."""
    return f.assign(temp=np.nan)


@pytest.fixture
def params(small_params):
    """The flight task's suite; drift (Evidently, not GX) left out to keep the tests short."""
    validation = small_params.validation
    return validation.model_copy(
        update={"drift": validation.drift.model_copy(update={"thresholds": {}})}
    )


def as_json(report) -> str:
    return json.dumps([asdict(o) for o in report.outcomes], default=str)


SCENARIOS = {
    "all_pass": (None, None, None),
    "screened_columns_fail": (unknown_carrier, null_carrier, month_out_of_range),
    "mostly_below_one": (few_missing_labels, arr_delay_spike, None),
    "column_missing_retyped_or_empty": (drop_column, wrong_type, no_temperature),
}


@pytest.mark.parametrize("corrupt", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_outcomes_with_the_screen_are_those_without(
    small_params, params, tmp_path: Path, corrupt
) -> None:
    frames = months(*corrupt)
    data = small_params.data
    without = validate_partitions(frames, params, data, tmp_path / "whole", screen=False)
    screened_run = validate_partitions(frames, params, data, tmp_path / "screen")
    assert as_json(screened_run) == as_json(without)
    assert screened_run.status == without.status

    raw = json.loads((tmp_path / "screen" / "gx_results.json").read_text())
    screen_run = raw.pop("screen: 2013-01..2013-03")  # the screen's own validation
    assert screen_run["results"] and set(raw) == {"2013-01", "2013-02", "2013-03"}
    whole = json.loads((tmp_path / "whole" / "gx_results.json").read_text())
    per_partition = len(whole["2013-01"]["results"])
    if corrupt[0] is not drop_column:  # a partition without a column runs the whole suite
        assert len(raw["2013-01"]["results"]) < per_partition  # the screen decided some
    assert (tmp_path / "screen" / "data_docs" / "index.html").is_file()

    decided = {
        (o.partition, o.expectation, o.column, o.severity)
        for o in screened_run.outcomes
        if o.success and o.unexpected_count == 0
    }
    assert ("2013-02", "expect_column_values_to_not_be_null", "dest", "block") in decided


def test_a_failing_screened_expectation_keeps_each_partitions_counts(small_params, params) -> None:
    frames = months(None, null_carrier, None)
    report = validate_partitions(frames, params, small_params.data)
    carrier_nulls = [
        (o.partition, o.success, o.unexpected_count)
        for o in report.outcomes
        if o.expectation == "expect_column_values_to_not_be_null" and o.column == "carrier"
    ]
    assert carrier_nulls == [("2013-01", True, 0), ("2013-02", False, 1), ("2013-03", True, 0)]
    empty = validate_partitions(months(None, no_temperature), params, small_params.data)
    (temp_range,) = [
        o
        for o in empty.outcomes
        if o.partition == "2013-02" and o.column == "temp" and o.severity == "warn"
        if o.expectation == "expect_column_values_to_be_between"
    ]
    assert (temp_range.success, temp_range.unexpected_count) == (True, 0)
    assert temp_range.unexpected_percent is None  # no row judged: GX gives no percentage


def test_only_row_wise_checks_of_every_row_on_one_dtype_are_screened(small_params, params) -> None:
    data = small_params.data
    frames = months(None, wrong_type, drop_column)
    batches = [prepare_batch(f, params, data, p) for p, f in frames]
    expectations = build_expectations(params, data.label)
    chosen = [
        expectations[i].configuration for i in screened(expectations, batches, stack(batches))
    ]
    kinds = {c.type for c in chosen}
    assert kinds == {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
    }  # dest's regex: dest is missing in March
    columns = {c.kwargs["column"] for c in chosen}
    assert "distance" not in columns  # int in two months, text in one
    assert "dest" not in columns
    assert all(c.kwargs.get("mostly") in (None, 1.0) for c in chosen)
    arr_delay = [c for c in chosen if c.kwargs["column"] == "arr_delay"]
    assert {c.meta["severity"] for c in arr_delay} >= {"warn"}
    assert all(
        c.kwargs.get("mostly") != 0.9 for c in arr_delay
    )  # the `mostly: 0.9` null check stays per partition


def test_the_cache_screens_only_the_new_partitions(small_params, params, tmp_path: Path) -> None:
    validation = params.model_copy(update={"cache_dir": tmp_path / "cache"})
    frames = months(None, null_carrier, None, unknown_carrier)
    shas = {p.name: p.name.replace("-", "") * 8 for p, _ in frames}

    first = validate_partitions(frames[:2], validation, small_params.data, None, shas)
    assert first.cached == []
    reports = tmp_path / "reports"
    second = validate_partitions(frames, validation, small_params.data, reports, shas)
    assert second.cached == ["2013-01", "2013-02"]
    raw = json.loads((reports / "gx_results.json").read_text())
    assert "screen: 2013-03..2013-04" in raw
    whole = validate_partitions(frames, params, small_params.data, screen=False)
    assert as_json(second) == as_json(whole)


def test_a_large_table_is_screened_a_chunk_of_partitions_at_a_time(
    small_params, params, tmp_path: Path, monkeypatch
) -> None:
    """Memory holds one chunk's batches and their stack (screen.SCREEN_ROWS rows), not the
    whole table's: four months of 300 rows with room for 600 make two screens; a month larger
    than a chunk alone is validated on its own. The outcomes stay those of the whole suite."""
    import maas.pipeline.validation.run as run_module
    from maas.pipeline.validation.screen import chunks

    frames = months(None, null_carrier, None, unknown_carrier)
    assert [[p.name for p, _ in c] for c in chunks(frames, 600)] == [
        ["2013-01", "2013-02"],
        ["2013-03", "2013-04"],
    ]
    assert [len(c) for c in chunks(frames, 299)] == [1, 1, 1, 1]  # each alone: no screen
    assert [len(c) for c in chunks(frames, 0)] == [1, 1, 1, 1]
    monkeypatch.setattr(run_module, "SCREEN_ROWS", 600)
    chunked = validate_partitions(frames, params, small_params.data, tmp_path)
    raw = json.loads((tmp_path / "gx_results.json").read_text())
    assert {"screen: 2013-01..2013-02", "screen: 2013-03..2013-04"} <= set(raw)
    whole = validate_partitions(frames, params, small_params.data, screen=False)
    assert as_json(chunked) == as_json(whole)
