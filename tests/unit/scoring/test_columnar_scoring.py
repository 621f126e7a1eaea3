"""Batch scoring's columnar path (`maas.serving.columnar`) against the record-by-record path
the service's record model defines, on the tiny model: the same scored rows, outputs and
unknown inputs, and the same refused rows with the same reasons, table for table, on hostile
columns (a string for a number, 1.5 for an int, a bool for a number, a number for a string,
nulls in required fields, an optional field left out, NaN/inf, huge ints, unknown
categories, extra columns); and a version recorded before the columnar path scores by the
record path instead of failing (issue 31)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from maas.scoring.worker import Scorer
from tests.helpers import ROOT, make_flights, write_tiny_model

PASSED = ["flight"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, small_params) -> Path:
    frame = make_flights(300, month=12, seed=3)
    return write_tiny_model(tmp_path_factory.mktemp("columnar") / "models", small_params, frame)


def base(n: int = 40) -> pa.Table:
    frame = make_flights(n, month=12, seed=11)
    frame["sched_dep_time"] = frame["sched_dep_time"].astype("int64")
    frame.loc[2, "carrier"] = "ZZ"  # a category the model never saw
    frame.loc[4, "temp"] = np.nan  # optional: scored as missing
    return pa.Table.from_pandas(frame, preserve_index=False)


def replaced(table: pa.Table, name: str, values: list, kind: pa.DataType | None = None):
    """`table` with column `name` of `values` (the first rows; the rest kept, cast to `kind`
    where it can be, else dropped)."""
    column = values + table.column(name).to_pylist()[len(values) :]
    try:
        array = pa.array(column, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = pa.array(values, type=kind)
        table = table.slice(0, len(values))
    return table.set_column(table.column_names.index(name), name, array)


def hostile_tables() -> dict[str, pa.Table]:
    table = base()
    huge = [2**53 + 1, 2**60, -(2**63), 2**63 - 1, 10, 6000, 6001, 9]
    return {
        "plain": table,
        "abc for a number": replaced(table, "distance", ["abc", "12", "1500"], pa.string()),
        "1.5 for an int": replaced(
            table, "distance", [1.5, 1500.0, np.nan, np.inf, -np.inf, 1e300, 2.0**53 + 2, None]
        ),
        "a float32 int": replaced(table, "sched_dep_time", [1230.0, 1230.5, 1299.0], pa.float32()),
        "a bool for a number": replaced(table, "temp", [True, False, None], pa.bool_()),
        "a bool for an int": replaced(table, "distance", [True, False], pa.bool_()),
        "a number for a string": replaced(table, "carrier", [1, 2, 3], pa.int64()),
        "huge ints": replaced(table, "distance", huge, pa.int64()),
        "huge ints for a float": replaced(table, "temp", [2**60, 2**53 + 1, -5, None], pa.int64()),
        "unsigned past int64": replaced(table, "sched_arr_time", [2**64 - 1, 1200, 0], pa.uint64()),
        "clock times": replaced(table, "sched_dep_time", [1299, -1, 2400, 2359, 0, 60, 159]),
        "nulls in required fields": replaced(
            replaced(table, "carrier", [None, "", "x" * 257, "x" * 256, "é"]),
            "distance",
            [None, None, 100],
        ),
        "NaN and inf": replaced(table, "temp", [np.nan, np.inf, -np.inf, 1e308, None, 0.0]),
        "optional field left out": table.drop_columns(["temp", "dewp"]),
        "dictionary categories": table.set_column(
            table.column_names.index("origin"),
            "origin",
            pa.array(
                ["JFK", "XXX", None, *table.column("origin").to_pylist()[3:]]
            ).dictionary_encode(),
        ),
        "extra columns": table.append_column("surprise", pa.array(["?"] * table.num_rows)),
    }


@pytest.mark.parametrize("case", list(hostile_tables()))
def test_the_columnar_path_gives_the_record_paths_tables(models, case) -> None:
    table = hostile_tables()[case]
    fast = Scorer(models, "1")
    assert fast.columnar is not None
    slow = Scorer(models, "1")
    slow.columnar = None  # the record path, as a version recorded before the columnar one
    for batch_rows in (7, 10_000):  # a null in some scoring calls and not in others
        got = fast.score(table, 100, PASSED, batch_rows)
        want = slow.score(table, 100, PASSED, batch_rows)
        for side, ours, theirs in zip(("scored", "refused"), got, want, strict=True):
            assert (ours is None) == (theirs is None), f"{case}: {side}"
            if ours is not None:
                assert ours.schema == theirs.schema, f"{case}: {side}"
                assert ours.to_pylist() == theirs.to_pylist(), f"{case}: {side}"


def test_clean_rows_skip_the_record_model_and_refusals_are_the_services(models) -> None:
    scorer = Scorer(models, "1")
    assert scorer.columnar.check_table(scorer.schema, base()).vouched.all()  # no pydantic
    table = hostile_tables()["clock times"]
    checked = scorer.columnar.check_table(scorer.schema, table)
    assert checked.vouched[[3, 4]].all() and checked.vouched[6:].all()
    assert not checked.vouched[[0, 1, 2, 5]].any()  # 12:99, -1, 24:00, 00:60: the model's call
    scored, refused = scorer.score(table, 0, PASSED, 10_000)
    assert refused.column("row").to_pylist() == [0, 1, 2, 5]
    assert (
        "sched_dep_time: Value error, 1299 is no clock time" in refused.column("error")[0].as_py()
    )
    assert scored.num_rows == table.num_rows - 4
    plain, _ = scorer.score(base(), 0, PASSED, 10_000)
    assert plain.column("unknown_inputs")[2].as_py() == ["carrier"]


def test_a_version_recorded_before_the_columnar_path_scores_by_record(models, tmp_path) -> None:
    """The recorded serving code without `columnar.py` (as every version registered before
    it), loaded as a worker loads it: the record path, the same tables."""
    code = tmp_path / "code"
    (code / "maas").mkdir(parents=True)
    shutil.copy(ROOT / "src" / "maas" / "__init__.py", code / "maas" / "__init__.py")
    shutil.copytree(ROOT / "src" / "maas" / "serving", code / "maas" / "serving")
    (code / "maas" / "serving" / "columnar.py").unlink()
    source = tmp_path / "in.parquet"
    import pyarrow.parquet as pq

    pq.write_table(hostile_tables()["clock times"], source)
    script = (
        "import json, sys; from pathlib import Path; "
        "from maas.scoring import worker; "
        f"worker.load_recorded(Path({str(code)!r})); "
        f"s = worker.Scorer(Path({str(models)!r}), '1'); "
        f"t = worker.read_unit({str(source)!r}, 0, 'parquet'); "
        "scored, refused = s.score(t, 0, ['flight'], 10000); "
        "print(json.dumps([s.columnar is None, scored.num_rows, refused.num_rows]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [True, 36, 4]
