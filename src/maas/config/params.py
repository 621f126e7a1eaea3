"""All of one task's parameters (params.yaml's shared sections with the task file merged over
them) as one frozen model, and the checks across its sections (a task file's sections must
agree)."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from maas.config.base import Strict
from maas.config.kinds import baseline_names, gate_metric
from maas.config.monitoring import MonitoringParams
from maas.config.promotion import EvaluateParams, PromotionParams
from maas.config.scoring import ScoringParams
from maas.config.sections import (
    DataParams,
    DeployParams,
    FeatureParams,
    ModelParams,
    PackagingParams,
    RegistryParams,
    RequestParams,
    ScheduleParams,
    ServingParams,
    TrainParams,
    TuneParams,
    ValidationParams,
)
from maas.config.task_spec import TASK_NAME


class Params(Strict):
    task: str = Field(pattern=TASK_NAME)  # the task these parameters are for (tasks/<task>.yaml)
    description: str = ""
    data: DataParams
    validation: ValidationParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    promotion: PromotionParams
    registry: RegistryParams
    serving: ServingParams
    packaging: PackagingParams
    deploy: DeployParams
    schedule: ScheduleParams
    tune: TuneParams = Field(default_factory=lambda: TuneParams.model_validate({}))
    monitoring: MonitoringParams = Field(
        default_factory=lambda: MonitoringParams.model_validate({})
    )
    scoring: ScoringParams = Field(default_factory=lambda: ScoringParams.model_validate({}))

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        cross_check(self)
        return self

    @property
    def request(self) -> RequestParams:
        rules = [r for r in self.validation.ranges if r.severity == "block" and r.mostly == 1.0]
        return RequestParams(
            kind=self.data.label.kind,
            classes=list(self.data.label.classes),
            body_key=self.serving.body_key,
            outputs=self.serving.outputs,
            types=dict(self.validation.columns),
            bounds={rule.column: (rule.min, rule.max) for rule in rules},
        )

    @property
    def logged_keys(self) -> list[str]:
        """Record fields the prediction log keeps beside the request's own: the task's key
        columns (validation.unique_key: late labels join on them) and time columns (the period
        a served record belongs to)."""
        return list(dict.fromkeys([*self.validation.unique_key, *self.data.time_columns]))

    def digest(self) -> str:
        """sha256 of the canonical JSON of all parameters (a lineage tag)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def cross_check(params: Params) -> None:
    """Raises ValueError naming the first disagreement (pydantic reports it with the file)."""
    kind = params.data.label.kind
    fitted = baseline_names(list(params.evaluate.baselines), kind)
    missing = [b for b in baseline_names(params.promotion.must_beat, kind) if b not in fitted]
    if missing:
        raise ValueError(
            f"promotion.must_beat names baselines not in evaluate.baselines: {missing}"
        )
    features = params.features
    both = sorted(set(features.categorical) & set(features.numeric))
    if both:
        raise ValueError(f"features both categorical and numeric: {both}")
    for name, derived in features.derived.items():
        if derived.source in features.derived:
            raise ValueError(
                f"derived feature {name!r} is computed from another: {derived.source!r}"
            )
        if name not in features.categorical and name not in features.numeric:
            raise ValueError(f"derived feature {name!r} is neither categorical nor numeric")
    gate_metric(kind, params.promotion.metric)  # one of the kind's metrics
    if params.validation.label_rate is not None and kind != "binary":
        raise ValueError(
            f"validation.label_rate is the positive share of a binary label; this task is {kind}"
        )
    undeclared_columns(params)


def undeclared_columns(params: Params) -> None:
    """Every column the task reads (features, derived features' sources, time, label) is a
    declared column of the data (validation.columns), so a misspelt or missing one is named
    here, with the task file, not as a training error after validation passed."""
    declared = params.validation.columns
    if not declared:
        return
    features = params.features
    derived = features.derived
    used = {
        **{c: "features.categorical" for c in features.categorical if c not in derived},
        **{c: "features.numeric" for c in features.numeric if c not in derived},
        **{d.source: f"features.derived.{name}.source" for name, d in derived.items()},
        **{c: "data.time" for c in params.data.time_columns},
        **{c: "data.split.key" for c in params.data.split.key},
        params.data.label.column: "data.label.column",
        **{c: "validation.drift.thresholds" for c in params.validation.drift.thresholds},
    }
    unknown = {column: where for column, where in used.items() if column not in declared}
    if unknown:
        named = ", ".join(f"{column!r} ({where})" for column, where in sorted(unknown.items()))
        raise ValueError(
            f"columns not in validation.columns (the data's columns): {named}; declare each "
            "with its type, or fix the name"
        )
