"""`maas.serving.columnar`: a table of records checked column by column vouches only for rows
the service's record model accepts, with the values it gives them, and one scoring call's
columns are `Schema.to_columns`' for the same records (every field type: int, clock time,
float, str, ISO date, bool; required and optional)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from maas.serving import columnar
from maas.serving.request import FieldSpec, RequestSpec
from maas.serving.schema import build_schema

SPEC = RequestSpec(
    body_key="rows",
    fields=(
        FieldSpec("n", "int", min=0, max=100),
        FieldSpec("at", "int"),
        FieldSpec("x", "float", min=-1.5, max=1e6, optional=True),
        FieldSpec("s", "str"),
        FieldSpec("day", "datetime", optional=True),
        FieldSpec("flag", "bool", optional=True),
        FieldSpec("k", "int", optional=True),
    ),
    outputs={"probability": "p", "decision": "d"},
)
SCHEMA = build_schema(SPEC, 1, frozenset({"at"}))

COLUMNS = {
    "n": pa.array([1, 0, 100, 101, -1, None, 50, 7, 8, 9, 10, 11]),
    "at": pa.array([1230.0, 1299.0, 2359.0, 0.0, 1230.5, np.nan, 60.0, 5.0, 1.0, 2.0, 3.0, 4.0]),
    "x": pa.array([0.5, None, np.nan, np.inf, -1.5, -1.6, 1e6, 1e7, 2.0, 3.0, 4.0, 5.0]),
    "s": pa.array(["a", "", "é" * 256, "é" * 257, None, "b", "c", "d", "e", "f", "g", "h"]),
    "day": pa.array(
        [
            "2024-02-29",
            "2023-02-29",
            "2024-03-04T10:00:00+01:00",
            "2024-03-04 10:00:00.5Z",
            "2024-01-01\n",
            "soon",
            None,
            "２０２４-01-01",
            "2024-01-01T24:00",
            "2024-12-31T23:59:59.123456Z",
            "2024-01-01" + " " * 40,
            "2024-06-30",
        ]
    ),
    "flag": pa.array([True, False, None, True, False, True, None, False, True, True, False, True]),
    "k": pa.array([2**62, -(2**63), None, 2**53, 2**53 + 1, 0, 1, 2, 3, 4, 5, 6]),
    "extra": pa.array(["?"] * 12),
}


def by_record(table: pa.Table) -> list:
    """Each row as the worker's record path sees it: the record model's record, or None."""
    accepted = []
    for row in table.to_pylist():
        values = {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        try:
            accepted.append(SCHEMA.record.model_validate(values))
        except ValidationError:
            accepted.append(None)
    return accepted


TABLES = {
    "typed": pa.table(COLUMNS),
    "strings for numbers": pa.table(
        {**COLUMNS, "n": pa.array(["1"] * 12), "x": pa.array(["a"] * 12)}
    ),
    "numbers for strings": pa.table(
        {**COLUMNS, "s": pa.array(range(12)), "day": pa.array([1.0] * 12)}
    ),
    "ints for a bool, bools for numbers": pa.table(
        {
            **COLUMNS,
            "flag": pa.array([1] * 12),
            "n": pa.array([True] * 12),
            "x": pa.array([False] * 12),
        }
    ),
    "optional fields left out": pa.table(
        {k: v for k, v in COLUMNS.items() if k not in ["x", "day", "flag", "k"]}
    ),
    "a required field left out": pa.table({k: v for k, v in COLUMNS.items() if k != "s"}),
    "float32, int8, uint64, dictionary": pa.table(
        {
            **COLUMNS,
            "x": COLUMNS["x"].cast(pa.float32()),
            "n": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], type=pa.int8()),
            "k": pa.array([2**64 - 1, 2**63, None, 0, 1, 2, 3, 4, 5, 6, 7, 8], type=pa.uint64()),
            "s": COLUMNS["s"].dictionary_encode(),
        }
    ),
}


@pytest.mark.parametrize("case", list(TABLES))
def test_only_rows_the_record_model_accepts_are_vouched_for_with_its_values(case) -> None:
    table = TABLES[case]
    records = by_record(table)
    checked = columnar.check_table(SCHEMA, table)
    for row, record in enumerate(records):
        if checked.vouched[row]:
            assert record is not None, f"{case}: row {row} vouched for, refused by the model"
        if record is not None and not checked.vouched[row]:
            checked.fill(row, record)  # as the worker does with the record model's answer
            checked.vouched[row] = True
    assert list(checked.vouched) == [r is not None for r in records]
    kept = np.flatnonzero(checked.vouched)
    for rows in (kept, kept[:2], kept[-3:]):  # calls with and without a null in a field
        if not len(rows):
            continue  # no call without records
        got = columnar.batch_columns(SPEC, checked, rows)
        want = SCHEMA.to_columns([records[i] for i in rows])
        assert list(got) == list(want)
        for name, values in want.items():
            expected = np.asarray(values)
            assert got[name].dtype == expected.dtype, f"{case}: {name}"
            assert got[name].tolist() == expected.tolist(), f"{case}: {name}"
            assert [type(v) for v in got[name].tolist()] == [type(v) for v in expected.tolist()]


def test_clean_typed_rows_need_no_record_model() -> None:
    checked = columnar.check_table(SCHEMA, TABLES["typed"])
    vouched = [2, 9, 11]  # row 0 is valid, but its 2**62 is past 2**53: the record model's call
    assert np.flatnonzero(checked.vouched).tolist() == vouched


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_outputs_built_column_wise_are_the_per_record_ones(kind) -> None:
    outputs = {"binary": {"probability": "p", "decision": "d"}, "regression": {"value": "v"}}
    spec = RequestSpec(
        body_key="rows",
        fields=SPEC.fields,
        kind=kind,
        outputs=outputs.get(kind, {"predicted_class": "c", "probabilities": "ps"}),
        classes=("a", "b", "c") if kind == "multiclass" else (),
    )
    schema = build_schema(spec, 1)
    rng = np.random.default_rng(0)
    shape = (50, 3) if kind == "multiclass" else (50,)
    values = rng.random(shape).astype(np.float32)
    values[0] = 0.5
    if kind == "multiclass":
        values[1] = [0.4, 0.4, 0.2]  # a tie: the first class, as `max` picks
        values[2] = [np.nan, 0.5, 0.5]
    columns = columnar.output_columns(spec, values)
    rows = [schema.output_values(row) for row in values.astype(float).tolist()]
    for name, column in columns.items():
        if isinstance(column, dict):
            per_row = [
                dict(zip(column, items, strict=True))
                for items in zip(*column.values(), strict=True)
            ]
            got = [{k: float(v) for k, v in d.items()} for d in per_row]
            assert str(got) == str([row[name] for row in rows])  # NaN compares as text
        else:
            assert np.asarray(column).tolist() == [row[name] for row in rows]


def test_a_value_the_record_model_gives_wider_than_the_strings_is_kept_whole() -> None:
    """String columns are fixed-width str arrays (converted per distinct value); a row the
    record model accepts (`fill`) may hold a longer value: it is not cut to the width."""
    from types import SimpleNamespace

    checked = columnar.check_table(SCHEMA, pa.table({**COLUMNS, "s": pa.array(["ab"] * 12)}))
    assert checked.values["s"].dtype == np.dtype("<U2")
    record = {name: checked.values[name][0] for name in checked.values}
    checked.fill(3, SimpleNamespace(**{**record, "s": "longer"}))
    assert checked.values["s"].tolist() == ["ab"] * 3 + ["longer"] + ["ab"] * 8
