"""The request spec a model version carries: the raw fields its features read, with their
types, blocking bounds and optionality, the body key, the output names and one example record
(the service's warm-up). Written into the preprocessing JSON by the train stage."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from maas.config import RequestParams
from maas.serving.derive import reads_dates
from maas.serving.preprocessing import Preprocessor
from maas.serving.request import FieldSpec, FieldType, RequestSpec


def field_type(name: str, request: RequestParams, rows: pd.DataFrame) -> FieldType:
    """The declared type (validation.columns), else the training column's dtype."""
    if name in request.types:
        return request.types[name]
    dtype = rows[name].dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if not pd.api.types.is_numeric_dtype(dtype):
        return "str"
    return "int" if pd.api.types.is_integer_dtype(dtype) else "float"


def json_value(value: Any, kind: FieldType) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if kind in ("str", "datetime"):
        return str(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value) == "True"
    return int(value) if kind == "int" else float(value)


def build_request_spec(
    request: RequestParams, preprocessor: Preprocessor, rows: pd.DataFrame
) -> RequestSpec:
    """From the fitted preprocessing (which fields, which optional) and training rows (an
    example; types where the task declares none; the categories they leave blank)."""
    optional = set(preprocessor.optional_inputs)
    # a category some training rows left blank may be null in a request too: it is scored as
    # in training (the unknown bucket); a category always given stays required
    categories = {preprocessor.source_of(name) for name in preprocessor.categorical}
    optional |= {name for name in categories if name in rows and rows[name].isna().any()}
    dates = {
        source for source, transform in preprocessor.derived.values() if reads_dates(transform)
    }
    fields = []
    for name in preprocessor.input_columns:
        low, high = request.bounds.get(name, (None, None))
        kind = "datetime" if name in dates else field_type(name, request, rows)
        if kind in ("str", "bool", "datetime"):
            low = high = None
        fields.append(FieldSpec(name, kind, low, high, name in optional))
    complete = rows.dropna(subset=[f.name for f in fields])
    row = (complete if len(complete) else rows).iloc[0]
    example = {f.name: json_value(row[f.name], f.type) for f in fields}
    return RequestSpec(
        body_key=request.body_key,
        fields=tuple(fields),
        kind=request.kind,
        outputs=request.outputs.model_dump(),
        example=example,
        classes=tuple(request.classes),
    )
