"""The evaluate and promotion sections: the baselines fitted beside the model, and the gate's
metric, floors and tolerances (`maas.pipeline.evaluation.gate` decides with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from maas.config.base import Strict
from maas.config.kinds import METRICS

# the linear family is logistic regression for classes, linear regression for values: either
# name serves every kind (maas.config.kinds.baseline_name)
BaselineName = Literal[
    "prior", "logistic_regression", "linear_regression", "hist_gradient_boosting"
]


class EvaluateParams(Strict):
    metrics_path: Path = Path("reports/metrics.json")
    plots_dir: Path = Path("reports/plots")
    baselines: list[BaselineName] = ["prior", "logistic_regression", "hist_gradient_boosting"]
    onnx_parity_tolerance: float = Field(1e-5, gt=0)


class PromotionParams(Strict):
    # the metric the gate decides on (null: the task kind's score: binary roc_auc, multiclass
    # macro_f1, regression r2); floors, baselines and the champion are compared on it
    metric: str | None = None
    # metric -> floor (at least, or at most for a lower-is-better metric such as rmse); a floor
    # on a metric the task's kind does not have is not applied. None by default: what a task
    # can reach is its own, so the gate asks it to beat the run's baselines (must_beat) and
    # the champion; `maas task init` proposes floors from the baselines it measured
    floors: dict[str, float] = {}
    # the floors for records without the optional inputs (a request shape the API accepts)
    floors_optional_absent: dict[str, float] = {}
    must_beat: list[BaselineName] = ["prior", "logistic_regression"]
    baseline_tolerance: float = Field(0.0, ge=0)  # in the gate metric's units
    max_regression: float = Field(0.005, ge=0)  # in the gate metric's units
    require_validation: bool = True
    auto_promote: bool = True
    # the key the register stage signs the verdict with and the controller checks it with
    # (or $MAAS_GATE_KEY); made once with mode 0600
    verdict_key_file: Path = Path(".maas/gate.key")

    @model_validator(mode="before")
    @classmethod
    def _older_floors(cls, value: Any) -> Any:
        """`min_roc_auc` and `min_roc_auc_optional_absent` (before task kinds) are the
        roc_auc floors."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for old, key in (
            ("min_roc_auc", "floors"),
            ("min_roc_auc_optional_absent", "floors_optional_absent"),
        ):
            if old in value:
                value[key] = {**(value.get(key) or {}), "roc_auc": value.pop(old)}
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRICS)}")
        return value

    @field_validator("floors", "floors_optional_absent")
    @classmethod
    def _known_floors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"floors on unknown metrics {unknown}; known: {', '.join(METRICS)}")
        for name, floor in value.items():
            low, high = METRICS[name].low, METRICS[name].high
            if (low is not None and floor < low) or (high is not None and floor > high):
                raise ValueError(
                    f"a {name} floor of {floor} can never be met or never fail: "
                    f"{name} lies in [{low}, {high}]"
                )
        return value
