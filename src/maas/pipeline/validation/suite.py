"""The Great Expectations suite of a task, built from its validation section and its label:
columns and types, domains and patterns, ranges and nulls, row count, unique keys, clock
times, the partition's own period, the label (rate, classes or numeric values)."""

from __future__ import annotations

from typing import Any

from maas.config import LabelSpec, ValidationParams
from maas.pipeline.validation.batch import (
    DATE_COLUMN,
    LABEL_COLUMN,
    PARTITION_COLUMN,
    clock_minutes_column,
    clock_part_column,
    derived_columns,
)

TYPE_LISTS = {
    "int": ["int64", "int32", "int16", "int8", "Int64", "Int32", "Int16", "Int8"],
    "float": [
        "float64",
        "float32",
        "Float64",
        "Float32",
        "int64",
        "int32",
        "int16",
        "int8",
        "Int64",
        "Int32",
        "Int16",
        "Int8",
        "uint64",
        "uint32",
        "uint16",
        "uint8",
    ],
    # GX 1.24 does not recognise pandas 3's default `str` dtype: string columns are handed
    # over as object columns and each value's type is checked.
    "str": ["str"],
    "bool": ["bool", "boolean"],  # numpy's bool, pandas' nullable boolean (each value: bool)
}


def build_expectations(params: ValidationParams, label: LabelSpec | None = None) -> list[Any]:
    """The suite's expectations, each with meta.severity, from the validation section and the
    task's label (binary by positive value: at most two values; multiclass: a value outside
    the classes blocks; regression: a value that is not a number blocks)."""
    import great_expectations.expectations as gxe

    items = [*_schema_expectations(params), *_value_expectations(params)]
    if params.label_rate is not None and (label is None or label.kind == "binary"):
        items.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=LABEL_COLUMN,
                min_value=params.label_rate.min,
                max_value=params.label_rate.max,
                meta=_severity(params.label_rate.severity),
            )
        )
    if label is None:
        return items
    if label.positive is not None:
        items.append(
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=label.column, min_value=1, max_value=2, meta=_severity("block")
            )
        )
    elif label.kind == "multiclass":
        items.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=label.column, value_set=_class_values(label), meta=_severity("block")
            )
        )
    elif label.kind == "regression":
        items.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=label.column, type_list=TYPE_LISTS["float"], meta=_severity("block")
            )
        )
    return items


def _class_values(label: LabelSpec) -> list[Any]:
    """The classes as the column may hold them: text, and numbers for numeric class names."""
    values: list[Any] = list(label.classes)
    for name in label.classes:
        try:
            number = float(name)
        except ValueError:
            continue
        values += [number, int(number)] if number.is_integer() else [number]
    return values


def _severity(severity: str) -> dict[str, str]:
    return {"severity": severity}


def _schema_expectations(params: ValidationParams) -> list[Any]:
    """Columns, their types and the exact column set; category domains and code patterns."""
    import great_expectations.expectations as gxe

    items: list[Any] = []
    for column, kind in params.columns.items():
        items.append(gxe.ExpectColumnToExist(column=column, meta=_severity("block")))
        items.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=column, type_list=TYPE_LISTS[kind], meta=_severity("block")
            )
        )
    items.append(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*params.columns, *derived_columns(params)],
            exact_match=True,
            meta=_severity(params.extra_columns),
        )
    )
    for column, values in params.domains.items():
        items.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=values, meta=_severity("block")
            )
        )
    for column, regex in params.patterns.items():
        items.append(
            gxe.ExpectColumnValuesToMatchRegex(column=column, regex=regex, meta=_severity("block"))
        )
    return items


def _value_expectations(params: ValidationParams) -> list[Any]:
    """Ranges, nulls, row count, unique keys, clock times, the partition's
    own month."""
    import great_expectations.expectations as gxe

    items: list[Any] = []
    for rule in params.ranges:
        items.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=rule.column,
                min_value=rule.min,
                max_value=rule.max,
                mostly=rule.mostly,
                meta=_severity(rule.severity),
            )
        )
    for band in params.distributions:
        expect = (
            gxe.ExpectColumnMeanToBeBetween
            if band.stat == "mean"
            else gxe.ExpectColumnStdevToBeBetween
        )
        items.append(
            expect(
                column=band.column,
                min_value=band.min,
                max_value=band.max,
                meta=_severity(band.severity),
            )
        )
    for null_rule in params.not_null:
        items.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=null_rule.column, mostly=null_rule.mostly, meta=_severity(null_rule.severity)
            )
        )
    items.append(
        gxe.ExpectTableRowCountToBeBetween(
            min_value=int(params.row_count.min),
            max_value=int(params.row_count.max),
            meta=_severity(params.row_count.severity),
        )
    )
    if len(params.unique_key) == 1:  # GX's compound check needs two columns or more
        items.append(
            gxe.ExpectColumnValuesToBeUnique(column=params.unique_key[0], meta=_severity("block"))
        )
    elif params.unique_key:
        items.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=params.unique_key, meta=_severity("block")
            )
        )
    for column in params.clock_times:
        items.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=clock_minutes_column(column),
                min_value=0,
                max_value=59,
                meta=_severity("block"),
            )
        )
    for column in params.clock_parts:
        items.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=clock_part_column(column), value_set=[1.0], meta=_severity("block")
            )
        )
    # 1 where the row's time lies in the partition's own period (computed per partition)
    items.append(
        gxe.ExpectColumnValuesToBeInSet(
            column=PARTITION_COLUMN, value_set=[1.0], meta=_severity(params.partition_dates)
        )
    )
    items.append(
        gxe.ExpectColumnValuesToNotBeNull(
            column=DATE_COLUMN, meta=_severity(params.partition_dates)
        )
    )
    return items
