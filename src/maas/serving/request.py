"""The task's request and response, declared in data (`RequestSpec`, saved in the model's
preprocessing JSON) and turned into strict pydantic models here, so the service's OpenAPI
document shows the task's own fields and bounds and schemathesis fuzzes them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    create_model,
)

from maas.serving.derive import ISO_DATETIME

# datetime: an ISO 8601 string; bool: JSON true/false, read as the category "True"/"False"
FieldType = Literal["int", "float", "str", "bool", "datetime"]
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


# The widest bounds of an int field: int64, as training columns hold integers. Every such
# value converts to a float; 10**400 does not (it overflowed featurizing: a 500).
INT_RANGE = (-(2**63), 2**63 - 1)
# A clock time written hhmm (1730 = 17:30), as validation's `clock_times` rule blocks in
# training: hours 0-23, minutes 0-59. In JSON Schema, one range per hour.
CLOCK_RANGE = (0, 2359)
CLOCK_HOURS: list[JsonValue] = [
    {"minimum": 100 * hour, "maximum": 100 * hour + 59} for hour in range(24)
]


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` admits 1665.0; `true`, `"1665"` and 1665.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else goes to strict int validation, which names the field


WHOLE = BeforeValidator(_whole_number)


def _clock_time(value: int) -> int:
    if value % 100 > 59:  # the hours are the bounds' (CLOCK_RANGE)
        raise ValueError(f"{value} is no clock time written hhmm: its minutes are over 59")
    return value


def _value_type(spec: FieldSpec, clock: bool) -> Any:
    """A field's type with its constraints. They sit inside the type, not on the field: for an
    optional field pydantic wrote the latter as `ge`/`le`, which JSON Schema does not know."""
    if spec.type == "str":
        return Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    if spec.type == "bool":  # strict: "true" or 1 is no boolean
        return bool
    if spec.type == "datetime":  # read by date transforms: an ISO 8601 date or date-time
        return Annotated[str, Field(pattern=ISO_DATETIME, max_length=40)]
    if spec.type == "float":
        return Annotated[float, Field(ge=spec.min, le=spec.max, allow_inf_nan=False)]
    low, high = CLOCK_RANGE if clock else INT_RANGE
    bounds = Field(
        ge=low if spec.min is None else max(spec.min, low),
        le=high if spec.max is None else min(spec.max, high),
    )
    if clock:
        hours = Field(json_schema_extra={"anyOf": CLOCK_HOURS})
        return Annotated[int, bounds, AfterValidator(_clock_time), hours, WHOLE]
    return Annotated[int, bounds, WHOLE]


def _field(spec: FieldSpec, clock: bool = False) -> tuple[Any, Any]:
    annotation = _value_type(spec, clock)
    if spec.optional:
        return annotation | None, Field(None)
    return annotation, Field(...)


class _Record(BaseModel):
    # Strict types: `false`, `"12"` or `12.5` are not a month (lax pydantic would coerce them;
    # schemathesis found `"visib": false` scored as 0); 12.0 is (JSON Schema's integer), and
    # integers are fine for float fields. Fields the model does not use are ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


def record_model(spec: RequestSpec, clock: Collection[str] = ()) -> type[BaseModel]:
    """One record of the request: the task's fields with their types, bounds and optionality;
    `clock`: the int fields the features read as hhmm clock times. Optional fields may be left
    out or null; such records score with lower quality (the model's test metrics with and
    without them are in /metadata)."""
    fields = {item.name: _field(item, item.name in clock) for item in spec.fields}
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
