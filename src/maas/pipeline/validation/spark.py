"""validation.engine: spark — the task's suite through Great Expectations' Spark datasource.

Each partition's prepared batch (batch.prepare_batch: the same check columns as on pandas)
becomes a Spark DataFrame by Arrow (pandas NaN and NaT become Spark nulls, as GX's pandas
engine counts them) and is validated whole, one run of the whole suite per partition, on
validation.spark_master. The outcomes are pandas' (tests/integration/test_validation_spark.py)
except where the engines legitimately differ:

- the type checks name Spark's types (`LongType`, not `int64`): the suite's type lists are
  translated (SPARK_TYPES) and a type check's observed value is Spark's type name, with no
  counts (pandas checks each value of a text column and counts the unexpected ones);
- means and standard deviations are summed in another order: their observed values may differ
  in the last bits of a float.

The screen (screen.py) is pandas-only: its exactness argument rests on pandas' dtypes per batch
and on pandas' `isin`, and what it saves (a pass over rows in this process) is not what a
Spark run costs (a job per metric bundle); Spark runs the whole suite per partition.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from maas.config import DataParams, LabelSpec, ValidationParams
from maas.errors import DataError, SparkError
from maas.pipeline.data.partitions import Partition
from maas.pipeline.validation.batch import prepare_batch
from maas.pipeline.validation.context import add_checkpoint, gx_context
from maas.pipeline.validation.outcome import ExpectationOutcome, outcome_of
from maas.pipeline.validation.suite import TYPE_LISTS, build_expectations

SUITE_NAME = "task_partition_spark"
TYPE_CHECK = "expect_column_values_to_be_in_type_list"
INTEGERS = ["LongType", "IntegerType", "ShortType", "ByteType"]
# the suite's column kinds as Spark types (pandas' in suite.TYPE_LISTS)
SPARK_TYPES = {
    "int": INTEGERS,
    "float": ["DoubleType", "FloatType", *INTEGERS],
    "str": ["StringType"],
    "bool": ["BooleanType"],
}
CONNECT_TIMEOUT_S = 5.0
# pandas to Spark by Arrow only: the non-Arrow fallback would keep NaN as a value, not a null
ARROW = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}


def master_addresses(master: str) -> list[tuple[str, int]]:
    """The host:port pairs a standalone (spark://h1:7077,h2:7077) or Kubernetes
    (k8s://https://host:port) master answers on; none for local and yarn."""
    if master.startswith("spark://"):
        found = []
        for part in master.removeprefix("spark://").split(","):
            host, _, port = part.rpartition(":")
            found.append((host or part, int(port) if port.isdigit() else 7077))
        return found
    if master.startswith("k8s://"):
        url = master.removeprefix("k8s://")
        split = urlsplit(url if "://" in url else f"https://{url}")
        default = 80 if split.scheme == "http" else 443
        return [(split.hostname or "", split.port or default)]
    return []


def check_master(master: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise SparkError naming validation.spark_master when no address of the master accepts
    a connection within timeout_s (Spark itself would retry for a minute, then give up)."""
    failures = []
    for host, port in master_addresses(master):
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            return
        except OSError as error:
            failures.append(f"{host}:{port}: {error}")
    if failures:
        raise SparkError(
            f"validation.spark_master {master}: no Spark master answers "
            f"({'; '.join(failures)}); start it, or set validation.spark_master: local[2] "
            "or validation.engine: pandas"
        )


def spark_session(master: str) -> tuple[Any, bool]:
    """The Spark session on `master`: this process's own if it has one on that master, else a
    new one; and whether it was started here (the caller stops only what it started). A
    standalone or Kubernetes master is first asked for a connection (`check_master`)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkError(
            "validation.engine spark needs pyspark: pip install 'maas[spark]'"
        ) from None
    check_master(master)
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise SparkError(
                f"validation.spark_master is {master}, but this process already runs Spark on "
                f"{running} (one Spark context per process)"
            )
        return active, False
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors import this venv's
    try:
        session = (
            SparkSession.builder.master(master)
            .appName("maas-validation")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        # one partition's batch is small: Spark's default 200 shuffle partitions made each
        # grouping (unique keys, value counts) 3x slower on local[2] (measured)
        parallelism = session.sparkContext.defaultParallelism
        session.conf.set("spark.sql.shuffle.partitions", str(parallelism))
    except Exception as error:  # no Java, a refused master URL: Spark's own error, one line
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
        raise SparkError(
            f"validation.spark_master {master}: Spark did not start: {reason}"
        ) from None
    return session, True


def spark_expectations(params: ValidationParams, label: LabelSpec | None) -> list[Any]:
    """The suite (suite.build_expectations) with its type checks naming Spark's types."""
    import great_expectations.expectations as gxe

    kinds = {tuple(names): kind for kind, names in TYPE_LISTS.items()}
    items = []
    for expectation in build_expectations(params, label):
        config = expectation.configuration
        if config.type == TYPE_CHECK:
            kind = kinds[tuple(config.kwargs["type_list"])]
            expectation = gxe.ExpectColumnValuesToBeInTypeList(
                column=config.kwargs["column"], type_list=SPARK_TYPES[kind], meta=config.meta
            )
        items.append(expectation)
    return items


def to_spark(spark: Any, batch: pd.DataFrame, partition: str) -> Any:
    """The prepared batch as a Spark DataFrame, converted by Arrow only (no silent fallback
    that would keep NaN as a value); a column Arrow cannot type is named."""
    try:
        return spark.createDataFrame(batch)
    except Exception as error:
        mixed = [
            column
            for column in batch.columns
            if batch[column].dtype == object and batch[column].dropna().map(type).nunique() > 1
        ]
        where = f" (values of several types in {', '.join(mixed)})" if mixed else ""
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
        raise DataError(
            f"partition {partition}: not convertible to a Spark DataFrame{where}: {first}; "
            "validation.engine pandas checks each value's type"
        ) from None


def run_suite_on_spark(
    frames: list[tuple[Partition, pd.DataFrame]],
    params: ValidationParams,
    data: DataParams,
    reports_dir: Path | None,
) -> dict[str, tuple[list[ExpectationOutcome], Any]]:
    """Each partition's outcomes and GX result (SUMMARY), the whole suite run on Spark; Data
    Docs under reports_dir. The session is stopped at the end if it was started here."""
    spark, started = spark_session(params.spark_master)  # before GX's import: fail fast
    try:
        import great_expectations as gx

        for key, value in ARROW.items():  # on a session this process had before, too
            spark.conf.set(key, value)
        context = gx_context(reports_dir)
        asset = context.data_sources.add_spark("partitions").add_dataframe_asset("partition")
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_partition")
        expectations = spark_expectations(params, data.label)
        point, _ = add_checkpoint(context, batch_definition, SUITE_NAME, expectations, "SUMMARY")
        fresh: dict[str, tuple[list[ExpectationOutcome], Any]] = {}
        for partition, frame in frames:
            name = partition.name
            table = to_spark(spark, prepare_batch(frame, params, data, partition), name)
            result = point.run(
                batch_parameters={"dataframe": table}, run_id=gx.RunIdentifier(run_name=name)
            )
            (suite_result,) = result.run_results.values()
            outcomes = [outcome_of(name, r) for r in suite_result.results]
            fresh[name] = (outcomes, suite_result.to_json_dict())
        if reports_dir is not None:
            context.build_data_docs(site_names=["maas"])
        return fresh
    finally:
        if started:
            spark.stop()
