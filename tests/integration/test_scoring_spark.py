"""`maas score --backend spark` on Spark local[2] (pyspark, Java 17): the same output as the
local backend on the same table — the schema, and every prediction column value for value —
an unknown category, an optional field left out and a refused row (to the errors file) among
the rows (issue 31 item 4). One Spark job (one session start) in this module."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maas.scoring.local import errors_path, score_table
from tests.helpers import make_flights, signed_champion
from tests.unit.scoring.test_local import table_with_hostile_rows

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (17 here)")
def test_spark_gives_the_local_backends_output_row_for_row(tmp_path, small_params) -> None:
    params, *_ = signed_champion(tmp_path, small_params, "sparked")
    rows = table_with_hostile_rows(make_flights(300, month=12, seed=3))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=60)
    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    options = {"version": "champion", "input_uri": str(source), "columns": ("tailnum",)}
    local = score_table(params, output=local_out, **options)
    sparked = score_table(params, output=spark_out, backend="spark", **options)
    assert (sparked.rows, sparked.errors, sparked.version) == (local.rows, local.errors, "1")
    assert (sparked.rows, sparked.errors) == (249, 1)
    assert spark_out.is_dir()  # Spark's part files, renamed into place whole
    assert not list(tmp_path.glob(".*partial")) and not list(tmp_path.glob("*.parts"))
    expected, got = pq.read_table(local_out), pq.read_table(spark_out)
    assert got.schema.names == expected.schema.names
    assert got.schema.types == expected.schema.types
    for name in expected.column_names:  # every value, in input order, float bits included
        assert got[name].to_pylist() == expected[name].to_pylist(), name
    assert got["unknown_inputs"][3].as_py() == ["carrier"]
    assert got["tailnum"].to_pylist() == rows.drop(index=7)["tailnum"].tolist()
    refused_local = pq.read_table(errors_path(local_out))
    refused_spark = pq.read_table(errors_path(spark_out))
    assert refused_spark.to_pylist() == refused_local.to_pylist()
    assert refused_spark.schema == refused_local.schema  # each task wrote its own, as local's
    # the task that refused row 7 wrote the part named by its unit's first row (60-row groups)
    assert [p.name for p in errors_path(spark_out).glob("part-*")] == [f"part-{0:015d}.parquet"]
    assert refused_spark["row"].to_pylist() == [7]
    from maas.scoring.lineage import recent_jobs
    from maas.tracking.store import connect

    newest, _ = recent_jobs(connect(params.registry), "sparked")
    assert newest["backend"] == "spark local[2]" and newest["rows"] == 249.0
