"""The sections of params.yaml as frozen, strict pydantic models (read by `maas.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from maas.config.base import ColumnType, Strict
from maas.config.rollout import RolloutParams
from maas.config.task_spec import (
    DerivedFeature,
    LabelSpec,
    OutputNames,
    Partitioning,
    SourceSpec,
    SplitSpec,
    TimeSpec,
)
from maas.config.validation import BandRule as BandRule
from maas.config.validation import DistributionRule as DistributionRule
from maas.config.validation import NotNullRule as NotNullRule
from maas.config.validation import RangeRule as RangeRule
from maas.config.validation import ValidationParams as ValidationParams


class DataParams(Strict):
    """Shared split settings (params.yaml) and the task's own data (its task file)."""

    raw_dir: Path = Path("data/raw")
    processed_dir: Path = Path("data/processed")
    test_partitions: int = Field(1, ge=1)  # the test window's fewest partitions
    # ... and the fewest rows, of each class for classification: the newest partitions are
    # taken until they hold them (maas.pipeline.data.test_window)
    min_test_rows: int = Field(100, ge=1)
    min_test_class_rows: int = Field(5, ge=0)
    # a class minimum is sought within this share of the rows; a class that cannot reach it
    # there is named too rare, and the older rows train (the row minimum still holds)
    max_test_share: float = Field(0.3, gt=0, le=1)
    max_train_partitions: int | None = Field(None, ge=1)
    source: SourceSpec = Field(default_factory=lambda: SourceSpec.model_validate({}))
    time: TimeSpec | None = None  # none: a table without a time column (split: key_hash)
    split: SplitSpec = Field(default_factory=lambda: SplitSpec.model_validate({}))
    label: LabelSpec

    @model_validator(mode="after")
    def _split_or_time(self) -> DataParams:
        if self.split.by == "time" and self.time is None:
            raise ValueError(
                "data.time names the time column; a table without one needs "
                "data.split: {by: key_hash} (maas task init without --time writes it)"
            )
        if self.split.by == "key_hash" and self.time is not None:
            raise ValueError("data.split.by key_hash is for a table without data.time")
        return self

    @property
    def partitioning(self) -> Partitioning:
        """How rows become partitions: the time's period, or `bucket` (key_hash)."""
        return "bucket" if self.time is None else self.time.partition

    @property
    def time_columns(self) -> list[str]:
        return [] if self.time is None else self.time.columns


class NumericBounds(Strict):
    min: float | None = None
    max: float | None = None
    optional: bool = False


class FeatureParams(Strict):
    categorical: list[str]
    numeric: dict[str, NumericBounds]
    derived: dict[str, DerivedFeature] = {}  # features computed from a request's raw fields
    min_frequency: int = Field(1, ge=1)

    @field_validator("categorical")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("duplicate feature names")
        return value


class TabMParams(Strict):
    """TabM (the `tabm` package): k MLPs sharing most weights, trained at once."""

    k: int = Field(32, ge=1, le=256)
    n_blocks: int = Field(2, ge=1, le=8)
    d_block: int = Field(512, ge=1, le=8192)


class NumericEmbeddingParams(Strict):
    """Embeddings of the numeric inputs (the `rtdl-num-embeddings` package), for either kind."""

    # auto: none and piecewise_linear both trained, the better on validation kept
    kind: Literal["none", "piecewise_linear", "periodic", "auto"] = "none"
    n_bins: int = Field(48, ge=2, le=1024)  # piecewise_linear: quantile bins per column
    d_embedding: int = Field(16, ge=1, le=512)


class ModelParams(Strict):
    kind: Literal["mlp", "tabm"] = "mlp"
    # the kind trained where no CUDA device is present (None: `kind` everywhere); the version
    # records the kind it was trained as (maas.pipeline.training.budget)
    cpu_kind: Literal["mlp", "tabm"] | None = None
    embedding_dim_max: int = Field(16, ge=1, le=512)  # mlp: categorical embedding widths
    hidden_sizes: list[int] = [128, 64]  # mlp
    dropout: float = Field(0.1, ge=0, lt=1)
    tabm: TabMParams = Field(default_factory=lambda: TabMParams.model_validate({}))
    numeric_embeddings: NumericEmbeddingParams = Field(
        default_factory=lambda: NumericEmbeddingParams.model_validate({})
    )

    @field_validator("hidden_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(size < 1 for size in value):
            raise ValueError("hidden_sizes needs at least one positive width")
        return value


class TrainParams(Strict):
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(1024, ge=1)
    learning_rate: float = Field(0.002, gt=0)
    lr_schedule: Literal["onecycle", "constant"] = "onecycle"
    weight_decay: float = Field(0.0, ge=0)
    max_epochs: int = Field(12, ge=1)
    patience: int = Field(3, ge=1)
    # the validation metric that picks the epoch kept and stops early: the kind's score
    # (roc_auc, macro_f1, r2) or the loss
    select_by: Literal["score", "loss"] = "score"
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    num_threads: int = Field(0, ge=0)
    mixed_precision: bool = True  # bf16 autocast on CUDA (no effect on the CPU)
    regression_loss: Literal["mse", "huber"] = "mse"  # regression tasks (standardized label)
    # multiclass loss weights (maas.pipeline.training.imbalance): auto, balanced when the gate
    # judges macro F1 and the classes are uneven; balanced; none
    class_weights: Literal["auto", "balanced", "none"] = "auto"
    # share of training rows whose optional inputs (features.numeric optional: true) are left
    # out, as a request may leave them out
    optional_absent_rate: float = Field(0.0, ge=0, lt=1)
    # share of categorical values replaced by the unknown bucket, so that a category the model
    # never saw scores with a trained embedding
    unknown_category_rate: float = Field(0.0, ge=0, lt=1)
    checkpoint_dir: Path = Path(".maas/checkpoints")
    models_dir: Path = Path("models")


class RegistryParams(Strict):
    tracking_uri: str | None = None
    artifact_root: Path = Path(".maas/mlartifacts")
    experiment: str  # default: maas-<task>
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # default: the task's name
    description: str = ""  # of the registered model (default: the task's description)


class ServingParams(Strict):
    body_key: str = Field("records", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # /predict's list
    outputs: OutputNames = Field(default_factory=lambda: OutputNames.model_validate({}))
    max_records: int = Field(1000, ge=1, le=100_000)
    workers: int = Field(1, ge=1, le=64)
    tracing: bool = False
    metrics: bool = True


class InfraValidationParams(Strict):
    sample_rows: int = Field(200, ge=1)
    tolerance: float = Field(1e-5, gt=0)
    latency_requests: int = Field(200, ge=10)
    ready_timeout_s: float = Field(120, gt=0)


class PackagingParams(Strict):
    backend: Literal["auto", "docker", "podman", "buildah"] = "auto"
    image_prefix: str = Field("maas", pattern=r"^[a-z0-9][a-z0-9._/-]*$")
    base_image: str = "localhost/maas-base:bookworm"
    base_image_suite: str = "bookworm"
    base_image_mirror: str | None = None
    ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt")
    build_options: dict[str, str | list[str]] = {}
    network: Literal["host", "bridge"] = "host"
    prepare_newest: int = Field(1, ge=0, le=10)  # packaged ahead by an idle maas watch
    infra_validation: InfraValidationParams


class GatewayParams(Strict):
    """The local target's HAProxy gateway: limits, metrics (docs/operations.md, security.md)."""

    maxconn: int = Field(4096, ge=1)  # connections at once; more wait in the kernel's queue
    rate_limit: int = Field(0, ge=0)  # requests per client address per 10 s (0: no limit)
    metrics_listen: str | None = Field(None, pattern=r"^[^:]*:\d+$")  # gateway_metrics


class DeployParams(Strict):
    target: Literal["local", "kubernetes"] = "local"
    address: str = Field("127.0.0.1:3000", pattern=r"^[^:]*:\d+$")
    state_dir: Path = Path(".maas/deploy")
    audit_log: Path = Path(".maas/audit.jsonl")
    reconcile_interval_s: float = Field(10, gt=0)
    webhook_listen: str | None = Field("127.0.0.1:3100", pattern=r"^[^:]*:\d+$")
    webhook_secret_file: Path = Path(".maas/webhook.secret")
    webhook_deadline_s: float = Field(10, gt=0)  # a whole webhook request, or it is cut
    webhook_max_connections: int = Field(32, ge=1)  # at once; one more gets 503
    ui_address: str = Field("127.0.0.1:5000", pattern=r"^[^:]*:\d+$")
    kubernetes_dir: Path = Path(".maas/deploy/kubernetes")
    kubernetes_replicas: int = Field(2, ge=1)
    tasks: list[str] | None = None  # the tasks `maas watch` serves (None: every task file)
    replicas: int = Field(1, ge=1, le=16)  # local: containers per model behind the gateway
    # each serving container's (and kubernetes pod's) limits; null: unlimited
    container_memory_mb: int | None = Field(2048, ge=128)
    container_cpus: float | None = Field(2.0, gt=0)
    container_pids_limit: int | None = Field(1024, ge=32)  # local containers only
    default_model: str | None = None  # what / reaches (None: the default task's model)
    gateway: GatewayParams = Field(default_factory=lambda: GatewayParams.model_validate({}))
    rollout: RolloutParams = Field(default_factory=lambda: RolloutParams.model_validate({}))

    @model_validator(mode="after")
    def _rollout_target(self) -> DeployParams:
        if self.rollout.strategy == "progressive" and self.target != "local":
            raise ValueError(
                "rollout.strategy: progressive needs deploy.target local (the HAProxy "
                "gateway's weights); a cluster's rollout is its own (Argo Rollouts, Flagger)"
            )
        return self


class PoolJobParams(Strict):
    """A flow run's Job on a Kubernetes work pool (`maas schedule --kubernetes-template`)."""

    image: str = "registry.example.com/maas-pipeline:latest"  # maas and the project installed
    namespace: str = "maas"
    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    finished_job_ttl_s: int = Field(86400, ge=0)  # finished Jobs (and their pods) removed after


class ScheduleParams(Strict):
    training_cron: str = "0 2 * * *"  # checked by Prefect's Cron when `maas schedule` starts
    timezone: str = "UTC"
    reconcile_interval_s: float = Field(60, gt=0)
    prefect_address: str = Field("127.0.0.1:4200", pattern=r"^[^:]*:\d+$")
    kubernetes: PoolJobParams = Field(default_factory=lambda: PoolJobParams.model_validate({}))


class SearchRange(Strict):
    """One searched parameter: a range (`low`, `high`; integers when both are, `log` scale)
    or a list of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchRange:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either non-empty choices or low < high, not both")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} must be below high {self.high}")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, not {self.low}")
        return self


class TuneParams(Strict):
    """`maas tune`: an Optuna study on the validation slice (docs/pipeline.md#tuning)."""

    trials: int = Field(20, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    seed: int = 0
    storage: str = ".maas/optuna.db"  # a path (SQLite) or a database URL (team mode)
    output: Path = Path("params.tuned.yaml")  # the best values; read over params.yaml
    warmup_epochs: int = Field(1, ge=0)  # epochs before a trial may be pruned
    space: dict[str, SearchRange] = {}  # empty: the default space of model.kind

    @field_validator("space")
    @classmethod
    def _known_keys(cls, value: dict[str, SearchRange]) -> dict[str, SearchRange]:
        for key in value:
            if not searchable(key):
                raise ValueError(f"{key!r} is not a model.* or train.* value that can be searched")
        return value


# They change the yardstick (the validation slice) or the machine, not the model.
NOT_SEARCHED = {"train.validation_fraction", "train.device", "train.num_threads"}


def searchable(key: str) -> bool:
    """`key` names one value (not a section) of the model or train parameters."""
    if key in NOT_SEARCHED:
        return False
    section, *parts = key.split(".")
    schema: Any = {"model": ModelParams, "train": TrainParams}.get(section)
    for index, part in enumerate(parts):
        field = schema.model_fields.get(part) if schema is not None else None
        if field is None:
            return False
        nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        if index == len(parts) - 1:
            return not nested
        schema = field.annotation if nested else None
    return False


class RequestParams(Strict):
    """What the service's request and response are made of, gathered from the task's sections
    (`Params.request`): the train stage writes it into the model's request spec."""

    kind: str
    classes: list[str] = []  # multiclass: the class values, in output order
    body_key: str
    outputs: OutputNames
    types: dict[str, ColumnType]  # validation.columns
    bounds: dict[str, tuple[float | None, float | None]]  # blocking ranges over every row
