"""`validation.engine: spark` (issue 32 item 2): Great Expectations' Spark datasource on Spark
local[2] gives the pandas engine's outcomes on the same partitions — a clean month and the
corruptions of validation_cases.py, several per partition — except where the engines
legitimately differ (validation/spark.py): a type check's observed value and counts (Spark's
type name; pandas checks each value of a text column), and a mean's or standard deviation's
last float bits. A Spark master that does not answer stops the validate stage with an error
naming validation.spark_master, before anything is written. One Spark session for the module.
"""

from __future__ import annotations

import math
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from maas.config import load_params
from maas.errors import ConfigError, SparkError
from maas.pipeline.data.partitions import Partition, period_bounds
from maas.pipeline.validation.run import validate_partitions
from tests.helpers import ROOT, make_flights
from tests.unit.pipeline.validation_cases import (
    CASES,
    all_delayed,
    bad_dest_code,
    bulk_wind_corruption,
    drop_column,
    duplicated_flight,
    impossible_date,
    minutes_after_midnight,
    minutes_over_59,
    month_out_of_range,
    null_carrier,
    pressure_in_inhg,
    temperature_in_celsius,
    too_few_rows,
    unknown_carrier,
    wind_sensor_error,
    wrong_month,
    wrong_type,
)

pytestmark = pytest.mark.integration
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (17 here)")

# every corruption of validation_cases.CASES, grouped so that none in a group undoes another
# (the duplicate row copies the impossible date): three corrupted January partitions and a
# clean one (each partition costs a Spark run of the whole suite)
GROUPS: list[tuple[Callable[[pd.DataFrame], pd.DataFrame], ...]] = [
    (),
    (
        drop_column,
        unknown_carrier,
        month_out_of_range,
        wind_sensor_error,
        minutes_over_59,
        wrong_month,
        too_few_rows,  # the first 50 rows, every corrupted row among them
    ),
    (
        wrong_type,
        null_carrier,
        bad_dest_code,
        all_delayed,
        pressure_in_inhg,
        minutes_after_midnight,
    ),
    (impossible_date, duplicated_flight, bulk_wind_corruption, temperature_in_celsius),
]
TYPE_CHECK = "expect_column_values_to_be_in_type_list"
SAME_IN_TYPE_CHECKS = ("partition", "expectation", "column", "severity", "success")


def partitions() -> list[tuple[Partition, pd.DataFrame]]:
    bounds = period_bounds("2013-01", "month")
    found = []
    for index, group in enumerate(GROUPS):
        frame = make_flights(300, month=1, seed=index)
        for corrupt in group:
            frame = corrupt(frame)
        name = f"jan-{index}" if group else "jan-clean"
        found.append((Partition(name, Path(f"{name}.parquet"), *bounds), frame))
    return found


def comparable(outcome) -> dict:
    """What both engines must agree on: all of an outcome but a type check's observed value
    and counts; a float's observed value rounded to 12 significant digits."""
    fields = asdict(outcome)
    if outcome.expectation == TYPE_CHECK:
        return {key: fields[key] for key in SAME_IN_TYPE_CHECKS}
    if isinstance(outcome.observed, float):
        fields["observed"] = float(f"{outcome.observed:.12g}")
    return fields


@pytest.fixture(scope="module")
def spark():
    from maas.pipeline.validation.spark import spark_session

    session, started = spark_session("local[2]")
    assert started
    yield session
    session.stop()


@pytest.fixture(scope="module")
def suite(small_params):
    """The flight task's suite; drift (Evidently, the same on both engines) left out."""
    validation = small_params.validation
    return validation.model_copy(
        update={"drift": validation.drift.model_copy(update={"thresholds": {}})}
    )


@pytest.mark.slow
@needs_java
def test_spark_gives_the_pandas_outcomes(spark, suite, small_params, tmp_path) -> None:
    frames = partitions()
    data = small_params.data
    on_pandas = validate_partitions(frames, suite, data, tmp_path / "pandas", screen=False)
    on_spark = validate_partitions(
        frames, suite.model_copy(update={"engine": "spark"}), data, tmp_path / "spark"
    )
    assert len(on_spark.outcomes) == len(on_pandas.outcomes) > 4 * 90
    for expected, got in zip(on_pandas.outcomes, on_spark.outcomes, strict=True):
        assert comparable(got) == comparable(expected)
        if isinstance(expected.observed, float):
            assert math.isclose(got.observed, expected.observed, rel_tol=1e-12)
    type_checks = [o for o in on_spark.outcomes if o.expectation == TYPE_CHECK]
    assert {o.observed for o in type_checks} >= {"LongType", "DoubleType", "StringType"}
    assert (on_spark.status, on_pandas.status) == ("failed", "failed")

    failed = {(o.partition, o.expectation, o.column, o.severity) for o in on_spark.blocking}
    failed |= {(o.partition, o.expectation, o.column, o.severity) for o in on_spark.warnings}
    assert not [f for f in failed if f[0] == "jan-clean"]
    group_of = {fix: frames[i][0].name for i, group in enumerate(GROUPS) for fix in group}
    for fix, expectation, column, severity in CASES:  # each corruption caught where it is
        assert (group_of[fix], expectation, column, severity) in failed, fix.__name__
    assert (tmp_path / "spark" / "data_docs" / "index.html").is_file()
    assert spark.sparkContext.master == "local[2]"  # the module's session, not stopped


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_master_that_does_not_answer_stops_the_validate_stage(small_params, tmp_path) -> None:
    """Nothing written for training: the stage fails before its windows (and so before any
    training or registration), in well under Spark's own minute of retries."""
    from maas.pipeline.data.windows import TRAIN_FILE
    from maas.pipeline.stages import validate_data

    raw = tmp_path / "raw"
    raw.mkdir()
    for month in (11, 12):
        make_flights(300, month=month, seed=month).to_parquet(raw / f"2013-{month}.parquet")
    data = small_params.data.model_copy(
        update={"raw_dir": raw, "processed_dir": tmp_path / "processed", "min_test_rows": 100}
    )
    master = f"spark://127.0.0.1:{free_port()}"
    validation = small_params.validation.model_copy(
        update={"engine": "spark", "spark_master": master, "cache_dir": None}
    )
    started = time.monotonic()
    with pytest.raises(SparkError, match=r"validation.spark_master spark://127\.0\.0\.1:\d+: no"):
        validate_data(data, validation)
    assert time.monotonic() - started < 30
    assert not (data.processed_dir / TRAIN_FILE).exists()


def test_a_spark_master_that_is_no_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="validation.spark_master"):
        load_params(
            ROOT / "params.yaml", ["validation.engine=spark", "validation.spark_master=h:1"]
        )
    params = load_params(ROOT / "params.yaml", ["validation.engine=spark"])
    assert (params.validation.engine, params.validation.spark_master) == ("spark", "local[2]")
