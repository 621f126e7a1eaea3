"""Pipeline parameters: params.yaml and the task files parsed once, at the edge (`load`), into
the frozen models of `sections` and `params`. This module only re-exports them."""

from __future__ import annotations

from maas.config.base import ColumnType, Severity, Strict
from maas.config.load import (
    apply_overrides,
    load_params,
    parse_override,
    parse_params,
    read_raw,
    tuned_overrides,
    write_tuned_values,
)
from maas.config.monitoring import MonitoringParams, PartitionDriftParams
from maas.config.params import Params
from maas.config.promotion import EvaluateParams, PromotionParams
from maas.config.sections import (
    BandRule,
    DataParams,
    DeployParams,
    DistributionRule,
    FeatureParams,
    InfraValidationParams,
    ModelParams,
    NotNullRule,
    NumericBounds,
    NumericEmbeddingParams,
    PackagingParams,
    RangeRule,
    RegistryParams,
    RequestParams,
    ScheduleParams,
    SearchRange,
    ServingParams,
    TabMParams,
    TrainParams,
    TuneParams,
    ValidationParams,
    searchable,
)
from maas.config.task_files import task_files
from maas.config.task_spec import (
    DateParts,
    DerivedFeature,
    LabelSpec,
    OutputNames,
    SourceSpec,
    TimeSpec,
)
from maas.errors import ConfigError

__all__ = [
    "BandRule",
    "ColumnType",
    "ConfigError",
    "DataParams",
    "DateParts",
    "DeployParams",
    "DerivedFeature",
    "DistributionRule",
    "EvaluateParams",
    "FeatureParams",
    "InfraValidationParams",
    "LabelSpec",
    "ModelParams",
    "MonitoringParams",
    "NotNullRule",
    "NumericBounds",
    "NumericEmbeddingParams",
    "OutputNames",
    "PackagingParams",
    "Params",
    "PartitionDriftParams",
    "PromotionParams",
    "RangeRule",
    "RegistryParams",
    "RequestParams",
    "ScheduleParams",
    "SearchRange",
    "ServingParams",
    "Severity",
    "SourceSpec",
    "Strict",
    "TabMParams",
    "TimeSpec",
    "TrainParams",
    "TuneParams",
    "ValidationParams",
    "apply_overrides",
    "load_params",
    "parse_override",
    "parse_params",
    "read_raw",
    "searchable",
    "task_files",
    "tuned_overrides",
    "write_tuned_values",
]
