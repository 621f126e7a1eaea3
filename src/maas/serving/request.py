"""The task's request and response, declared in data (`RequestSpec`, saved in the model's
preprocessing JSON) and turned into strict pydantic models here, so the service's OpenAPI
document shows the task's own fields and bounds and schemathesis fuzzes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from maas.serving.derive import ISO_DATETIME

FieldType = Literal["int", "float", "str", "datetime"]  # datetime: an ISO 8601 string
MAX_TEXT = 256  # longest string a request field may carry


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    min: float | None = None  # bounds a value must lie in (else the request is a 400)
    max: float | None = None
    optional: bool = False  # may be left out or null: scored as missing


@dataclass(frozen=True)
class RequestSpec:
    """`POST /predict {body_key: [record, ...]}` -> one prediction per record."""

    body_key: str
    fields: tuple[FieldSpec, ...]
    kind: str = "binary"  # binary | multiclass | regression
    # the output field names (the task's serving.outputs, maas.config.task_spec.OutputNames):
    # binary "probability", "decision"; multiclass "predicted_class", "probabilities";
    # regression "value"
    outputs: dict[str, str] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)  # a training record (the warm-up)
    classes: tuple[str, ...] = ()  # multiclass: the class values, in the model's output order

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.fields]

    @property
    def probability(self) -> str:
        """binary: the output field of the positive class's probability."""
        return self.outputs["probability"]

    @property
    def decision(self) -> str:
        """binary: the output field of the decision at the threshold."""
        return self.outputs["decision"]

    @property
    def output_fields(self) -> tuple[str, ...]:
        """The response's fields of one prediction, the first being the one compared in
        infra-validation (binary: the probability; multiclass: the class probabilities;
        regression: the value)."""
        keys = {
            "binary": ("probability", "decision"),
            "multiclass": ("probabilities", "predicted_class"),
            "regression": ("value",),
        }[self.kind]
        return tuple(self.outputs[key] for key in keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "body_key": self.body_key,
            "kind": self.kind,
            "outputs": dict(self.outputs),
            "fields": [asdict(spec) for spec in self.fields],
            "example": dict(self.example),
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestSpec:
        return cls(
            body_key=str(data["body_key"]),
            fields=tuple(FieldSpec(**spec) for spec in data["fields"]),
            kind=str(data.get("kind", "binary")),
            outputs={str(k): str(v) for k, v in (data.get("outputs") or {}).items()},
            example=dict(data.get("example") or {}),
            classes=tuple(str(c) for c in data.get("classes") or ()),
        )


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` admits 1665.0; `true`, `"1665"` and 1665.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else goes to strict int validation, which names the field


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _field(spec: FieldSpec) -> tuple[Any, Any]:
    bounds: dict[str, Any] = {"ge": spec.min, "le": spec.max}
    if spec.type == "str":
        annotation: Any = str
        bounds = {"min_length": 1, "max_length": MAX_TEXT}
    elif spec.type == "datetime":  # read by date transforms: an ISO 8601 date or date-time
        annotation, bounds = str, {"pattern": ISO_DATETIME, "max_length": 40}
    elif spec.type == "int":
        annotation = WholeNumber
    else:
        annotation = float
        bounds["allow_inf_nan"] = False
    if spec.optional:
        return annotation | None, Field(None, **bounds)
    return annotation, Field(..., **bounds)


class _Record(BaseModel):
    # Strict types: `false`, `"12"` or `12.5` are not a month (lax pydantic would coerce them;
    # schemathesis found `"visib": false` scored as 0); 12.0 is (JSON Schema's integer), and
    # integers are fine for float fields. Fields the model does not use are ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


def record_model(spec: RequestSpec) -> type[BaseModel]:
    """One record of the request: the task's fields with their types, bounds and optionality.
    Optional fields may be left out or null; such records score with lower quality (the
    model's test metrics with and without them are in /metadata)."""
    fields = {item.name: _field(item) for item in spec.fields}
    model: type[BaseModel] = create_model("Record", __base__=_Record, **fields)  # type: ignore[call-overload]
    return model


def prediction_model(spec: RequestSpec) -> type[BaseModel]:
    """One prediction, plus the fields whose value the model never saw in training. binary:
    the positive class's probability and the decision at 0.5; multiclass: the most probable
    class and each class's probability; regression: the predicted value."""
    outputs: dict[str, Any]
    if spec.kind == "multiclass":
        probabilities, predicted = spec.output_fields
        names: Any = Literal.__getitem__(spec.classes)  # the class values, as an enum
        outputs = {
            predicted: (names, Field(..., description="the most probable class")),
            probabilities: (
                dict[str, float],
                Field(..., description=f"each class's probability: {', '.join(spec.classes)}"),
            ),
        }
    elif spec.kind == "regression":
        outputs = {spec.output_fields[0]: (float, ...)}
    else:
        outputs = {spec.probability: (float, ...), spec.decision: (bool, ...)}
    unknown: Any = Field(
        default_factory=list,
        description="fields whose value the model never saw in training (e.g. a new category): "
        "scored with the category's unknown bucket, so with less confidence",
    )
    model: type[BaseModel] = create_model(
        "Prediction", **outputs, unknown_inputs=(list[str], unknown)
    )
    return model
