"""The request and response models of one model version's service, generated from the
task's request spec (`maas.serving.request`), and the conversions around one scoring call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from maas.serving.request import RequestSpec, prediction_model, record_model

THRESHOLD = 0.5  # the same decision threshold as the registered pyfunc model


@dataclass(frozen=True)
class Schema:
    """The pydantic models of one task's API: a record, the /predict body (its list under the
    task's body key, 1..max_records long), one prediction and the response; `clock`: the
    fields a record must hold hhmm clock times in."""

    spec: RequestSpec
    record: type[BaseModel]
    request: type[BaseModel]
    prediction: type[BaseModel]
    response: type[BaseModel]
    clock: frozenset[str] = frozenset()

    def to_columns(self, records: list[BaseModel]) -> dict[str, list[Any]]:
        """Records -> columns for one vectorized featurize + ONNX call."""
        rows = [record.__dict__ for record in records]
        return {name: [row[name] for row in rows] for name in self.spec.names}

    def records(self, request: BaseModel) -> list[BaseModel]:
        records: list[BaseModel] = getattr(request, self.spec.body_key)
        return records

    def to_response(
        self, version: str, outputs: np.ndarray, unknown: list[list[str]] | None = None
    ) -> BaseModel:
        """Predictions in request order. Built without re-validation: the values come from the
        model (floats), the threshold (bools) and the class list, and validating them again
        was a visible share of a bulk request (profiled)."""
        values = [self.output_values(row) for row in outputs.astype(float).tolist()]
        predictions = [
            self.prediction.model_construct(**fields, unknown_inputs=u)
            for fields, u in zip(values, unknown or [[] for _ in values], strict=True)
        ]
        return self.response.model_construct(model_version=version, predictions=predictions)

    def output_values(self, row: Any) -> dict[str, Any]:
        """One prediction's fields from the model's output for one record."""
        spec = self.spec
        if spec.kind == "multiclass":
            probabilities, predicted = spec.output_fields
            best = max(range(len(row)), key=row.__getitem__)
            return {
                predicted: spec.classes[best],
                probabilities: dict(zip(spec.classes, row, strict=True)),
            }
        if spec.kind == "regression":
            return {spec.output_fields[0]: row}
        return {spec.probability: row, spec.decision: row >= THRESHOLD}


def build_schema(
    spec: RequestSpec, max_records: int, clock: frozenset[str] = frozenset()
) -> Schema:
    """`clock`: the fields the model's features read as hhmm clock times
    (`Preprocessor.clock_inputs`), which a record must hold real clock times in."""
    record: Any = record_model(spec, clock)
    records: Any = Annotated[list[record], Field(min_length=1, max_length=max_records)]
    request: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "PredictRequest",
        # An unknown top-level key is refused (a typo in the body key is a 400, not "empty").
        __config__=ConfigDict(extra="forbid"),
        **{spec.body_key: (records, ...)},
    )
    prediction: Any = prediction_model(spec)
    response: type[BaseModel] = create_model(
        "PredictResponse", model_version=(str, ...), predictions=(list[prediction], ...)
    )
    return Schema(spec, record, request, prediction, response, clock)
