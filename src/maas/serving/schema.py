"""The request and response of the service: pydantic models with strict types and bounds.

Field names are the record fields of training (`maas.serving.preprocessing.RECORD_FIELDS` and
`WEATHER_FIELDS`, tested); the service builds the bounded list type from its Bento arguments.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

THRESHOLD = 0.5  # the same decision threshold as the registered pyfunc model


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` admits 1665.0; `true`, `"1665"` and 1665.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else goes to strict int validation, which names the field


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _number(low: float, high: float) -> Any:
    return Field(None, ge=low, le=high, allow_inf_nan=False)


class Flight(BaseModel):
    """A scheduled flight: what is known before departure. The origin's weather fields may be
    left out or null (unknown ahead of time); such records score with lower quality: the
    model's test ROC AUC with and without them is in /metadata (`test_metrics.roc_auc`,
    `test_metrics.optional_absent_roc_auc`).

    Strict types: `false`, `"12"` or `12.5` are not a month (lax pydantic would coerce them;
    schemathesis found `"visib": false` scored as 0); 12.0 is (JSON Schema's integer), and
    integers are fine for float fields."""

    model_config = ConfigDict(extra="ignore", strict=True)

    month: WholeNumber = Field(ge=1, le=12)
    day: WholeNumber = Field(ge=1, le=31)
    sched_dep_time: WholeNumber = Field(ge=0, le=2359)
    sched_arr_time: WholeNumber = Field(ge=0, le=2359)
    carrier: str = Field(min_length=1, max_length=8)
    origin: str = Field(min_length=1, max_length=8)
    dest: str = Field(min_length=1, max_length=8)
    distance: float = Field(gt=0, le=20000, allow_inf_nan=False)
    temp: float | None = _number(-100, 150)
    dewp: float | None = _number(-100, 150)
    humid: float | None = _number(0, 100)
    wind_dir: float | None = _number(0, 360)
    wind_speed: float | None = _number(0, 500)
    wind_gust: float | None = _number(0, 500)
    precip: float | None = _number(0, 50)
    pressure: float | None = _number(800, 1200)
    visib: float | None = _number(0, 100)


class Prediction(BaseModel):
    delay_probability: float
    delayed: bool
    unknown_inputs: list[str] = Field(
        default_factory=list,
        description="fields whose value the model never saw in training (e.g. a new carrier): "
        "scored with the category's unknown bucket, so with less confidence",
    )


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


FIELDS = list(Flight.model_fields)


# Scored once at start-up: /readyz turns ready only after a real prediction ran.
WARMUP_FLIGHT = Flight(month=1, day=1, sched_dep_time=800, sched_arr_time=1100, carrier="AA",
                       origin="JFK", dest="LAX", distance=2475)  # fmt: skip


def to_columns(flights: list[Flight]) -> dict[str, list[Any]]:
    """Records → columns for one vectorized featurize + ONNX call."""
    rows = [flight.__dict__ for flight in flights]
    return {name: [row[name] for row in rows] for name in FIELDS}


def to_response(
    version: str, probs: np.ndarray, unknown: list[list[str]] | None = None
) -> PredictResponse:
    """Predictions in request order. Built without re-validation: the values come from the
    model (floats) and the threshold (bools), and validating them again was a visible share of
    a bulk request (profiled)."""
    values = probs.astype(float).tolist()
    predictions = [
        Prediction.model_construct(delay_probability=p, delayed=p >= THRESHOLD, unknown_inputs=u)
        for p, u in zip(values, unknown or [[] for _ in values], strict=True)
    ]
    return PredictResponse.model_construct(model_version=version, predictions=predictions)
