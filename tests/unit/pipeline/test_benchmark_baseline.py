"""The plain-pandas baseline of benchmarks/pipeline.py checks what the GX suite checks: a
comparison of their speed only means something if both fail on the same defects."""

from __future__ import annotations

import pytest
from benchmarks.pipeline import pandas_checks

from maas.pipeline.validation.batch import prepare_batch
from tests.helpers import make_flights
from tests.unit.pipeline.validation_cases import (
    CASES,
    JAN,
    all_delayed,
    duplicated_flight,
    impossible_date,
    run,
    too_few_rows,
    unknown_carrier,
    wind_sensor_error,
    wrong_type,
)

SOME = [
    wrong_type,
    unknown_carrier,
    duplicated_flight,
    impossible_date,
    all_delayed,
    too_few_rows,
    wind_sensor_error,
]
assert all(any(case[0] is corrupt for case in CASES) for corrupt in SOME)


@pytest.mark.parametrize("corrupt", [None, *SOME], ids=["clean", *[c.__name__ for c in SOME]])
def test_pandas_baseline_fails_exactly_where_the_suite_fails(small_params, corrupt) -> None:
    frame = make_flights(300) if corrupt is None else corrupt(make_flights(300))
    report = run(frame, small_params)
    gx_failed = sum(1 for outcome in report.outcomes if not outcome.success)
    batch = prepare_batch(frame, small_params.validation, small_params.data, JAN)
    pandas_failed = pandas_checks(batch, small_params.validation)
    assert len(pandas_failed) == gx_failed, (
        pandas_failed,
        [o.describe() for o in report.outcomes if not o.success],
    )
    assert (gx_failed == 0) == (corrupt is None)
