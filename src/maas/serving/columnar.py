"""A table of records validated column by column, as the service's record model
(`maas.serving.request.record_model`) checks them one at a time, and the outputs of a scoring
call built column by column, as `Schema.output_values` builds them one row at a time: batch
scoring's fast path (`maas.scoring.worker`).

`check_table` vouches only for the rows it can prove the record model accepts, with the
values the model would give (types, required fields, nulls, bounds, clock times, string
lengths, the ISO date pattern); every other row goes to the record model itself, so a refused
row's reason is the service's own message (`fill`). `batch_columns` then gives one scoring
call's columns exactly as `Schema.to_columns` gives them for the same records.

pyarrow is imported inside `check_table` only: the serving image has none and never imports
this module (batch scoring does, in its workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maas.serving.derive import ISO_DATETIME
from maas.serving.preprocessing import UNKNOWN_INDEX
from maas.serving.request import CLOCK_RANGE, INT_RANGE, MAX_TEXT, FieldSpec, RequestSpec
from maas.serving.schema import THRESHOLD, Schema

EXACT = 2**53  # integers up to here are exact in float64: bounds compare them without doubt
DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_, "str": object, "datetime": object}


@dataclass
class CheckedRecords:
    """Per field of the spec: each row's value (as the record model gives it) and whether it
    is null (left out, null or NaN); `vouched`: the rows whose every field passed the checks.
    The values of rows not vouched for are placeholders until `fill` sets them."""

    values: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    vouched: np.ndarray

    def fill(self, row: int, record: Any) -> None:
        """Set row `row` from a record the record model accepted (its validated values)."""
        for name, values in self.values.items():
            value = record.__dict__[name]
            self.nulls[name][row] = value is None
            if value is None:
                continue
            if values.dtype.kind == "U" and not _fits(value, values):  # hold it as it is
                self.values[name] = values = values.astype(object)
            values[row] = value


def _fits(value: Any, strings: np.ndarray) -> bool:
    """Whether a str array holds `value` unchanged (a str no wider than its width)."""
    return isinstance(value, str) and len(value) <= strings.dtype.itemsize // 4


def check_table(schema: Schema, table: Any) -> CheckedRecords:
    """A pyarrow Table of records (columns named as the task's fields; others ignored)
    checked field by field: what the record model of `schema` would accept, with its values."""
    import pyarrow as pa

    rows = table.num_rows
    values: dict[str, np.ndarray] = {}
    nulls: dict[str, np.ndarray] = {}
    vouched = np.ones(rows, dtype=bool)
    for spec in schema.spec.fields:
        if spec.name in table.column_names:
            column = table.column(spec.name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            value, null, ok = _check_column(spec, spec.name in schema.clock, column)
        else:  # left out: null in every row (a required field's rows go to the record model)
            value = np.zeros(rows, dtype=DTYPES[spec.type])
            null, ok = np.ones(rows, dtype=bool), np.zeros(rows, dtype=bool)
        values[spec.name], nulls[spec.name] = value, null
        vouched &= ok | (null & spec.optional)
    return CheckedRecords(values, nulls, vouched)


def _check_column(spec: FieldSpec, clock: bool, column: Any) -> tuple[Any, Any, Any]:
    """(values, nulls, ok): ok where a non-null value is one the record model accepts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    floating = pa.types.is_float32(kind) or pa.types.is_float64(kind)
    integer = pa.types.is_integer(kind)
    # a NaN is a missing value, as a JSON body cannot hold one (the worker's rule)
    null = _numpy(pc.is_null(column, nan_is_null=True)).astype(bool)
    rows = len(null)
    if spec.type in ("str", "datetime") and (
        pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        # each distinct value checked and converted once (Arrow's dictionary encoding), then
        # spread back to the rows: not a Python string per row (profiled)
        coded = pc.dictionary_encode(column.fill_null("").combine_chunks())
        distinct, where = coded.dictionary, _numpy(coded.indices).astype(np.intp)
        length = _numpy(pc.utf8_length(distinct)).astype(np.int64)
        if spec.type == "str":
            fits = (length >= 1) & (length <= MAX_TEXT)
        else:
            fits = (length <= 40) & _numpy(pc.match_substring_regex(distinct, ISO_DATETIME))
        # a str array: what `numpy.asarray` makes of the values
        return np.asarray(_numpy(distinct), dtype=str)[where], null, fits[where] & ~null
    if spec.type == "bool" and pa.types.is_boolean(kind):
        return _numpy(column.fill_null(False)).astype(bool), null, ~null
    if spec.type in ("int", "float") and (floating or integer):
        if integer:  # a uint64 past int64 is refused by the bounds: compare it as a float
            number = _numpy(column.fill_null(0))
            exact = np.abs(number.astype(np.float64)) <= EXACT
        else:
            number = _numpy(column.fill_null(0.0)).astype(np.float64)
            with np.errstate(invalid="ignore"):
                exact = np.isfinite(number) & (np.abs(number) <= EXACT)
        number = np.where(exact & ~null, number, 0)
        if spec.type == "float":
            value = number.astype(np.float64)
            low, high = spec.min, spec.max
            ok = exact
        else:  # 12.0 is an int (JSON Schema's integer); 12.5 is not
            ok = exact & (np.mod(number, 1) == 0) if not integer else exact
            value = number.astype(np.int64)
            low, high = CLOCK_RANGE if clock else INT_RANGE
            low = low if spec.min is None else max(spec.min, low)
            high = high if spec.max is None else min(spec.max, high)
            if clock:
                ok &= np.mod(value, 100) <= 59
        if low is not None:
            ok &= value >= low
        if high is not None:
            ok &= value <= high
        return value, null, ok & ~null
    # any other type (a string for a number, a number for a string, a bool for a number):
    # its non-null values go to the record model, which names what is wrong
    return np.zeros(rows, dtype=DTYPES[spec.type]), null, np.zeros(rows, dtype=bool)


def _numpy(array: Any) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def batch_columns(spec: RequestSpec, records: CheckedRecords, rows: np.ndarray) -> dict[str, Any]:
    """The scoring call's columns for the accepted records at `rows`, as `Schema.to_columns`
    gives them (what `numpy.asarray` makes of them): a field with a null in this call is an
    object array holding None there, any other a typed array."""
    columns: dict[str, Any] = {}
    for field in spec.fields:
        values = records.values[field.name][rows]
        null = records.nulls[field.name][rows]
        if null.any():
            values = values.astype(object)
            values[null] = None
        elif field.type in ("str", "datetime"):
            values = _as_str(values)
        columns[field.name] = values
    return columns


def _as_str(values: np.ndarray) -> np.ndarray:
    """What `numpy.asarray` makes of these strings: a str array as wide as the longest."""
    if values.dtype.kind != "U":
        return values.astype(str)
    longest = int(np.strings.str_len(values).max())
    return values.astype(f"<U{max(longest, 1)}", copy=False)


def score(model: Any, columns: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """`OnnxModel.score` of one call's columns, the fields with a value unknown to the model
    named only for the rows that have one: (outputs, those rows, their fields). Listing an
    empty list for every other row was a visible share of a scored row group (profiled)."""
    cat, num, absent = model.preprocessor.encode(columns)
    outputs = model.session.run(None, {"categorical": cat, "numeric": num})[0]
    rows = np.flatnonzero(((cat == UNKNOWN_INDEX) & ~absent).any(axis=1))
    return outputs, rows, model.preprocessor.unknown_inputs(cat[rows], absent[rows])


def output_columns(spec: RequestSpec, outputs: np.ndarray) -> dict[str, Any]:
    """The predictions' fields (`Schema.output_values`) for every row of the model's output
    at once: binary the probability and the decision, multiclass the most probable class and
    each class's probability (a dict of columns), regression the value; float64 throughout."""
    values = outputs.astype(np.float64)
    if spec.kind == "multiclass":
        probabilities, predicted = spec.output_fields
        best = np.zeros(len(values), dtype=np.int64)
        for index in range(1, values.shape[1]):  # the first of equal maxima, as `max` picks
            best = np.where(values[:, index] > values[np.arange(len(values)), best], index, best)
        classes = np.asarray(spec.classes, dtype=object)
        per_class = {name: values[:, i] for i, name in enumerate(spec.classes)}
        return {predicted: classes[best], probabilities: per_class}
    if spec.kind == "regression":
        return {spec.output_fields[0]: values}
    return {spec.probability: values, spec.decision: values >= THRESHOLD}
