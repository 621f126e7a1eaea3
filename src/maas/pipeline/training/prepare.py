"""The training window made ready for `fit`: split in time, preprocessing fitted on the earlier
part, tensors, the batch augmentation, and the fingerprint that names a training job."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import DataParams, FeatureParams, ModelParams, RequestParams, TrainParams
from maas.pipeline.data.partitions import split_latest
from maas.pipeline.data.windows import TRAIN_FILE, read_window
from maas.pipeline.training.augment import Augmentation
from maas.pipeline.training.budget import announced_model, model_for_host
from maas.pipeline.training.candidates import candidate_models
from maas.pipeline.training.fit import TensorSet
from maas.pipeline.training.model import Head, ModelConfig, model_config_for
from maas.pipeline.training.request_spec import build_request_spec
from maas.serving.preprocessing import Preprocessor, fit_preprocessor


@dataclass(frozen=True)
class PreparedTraining:
    """The training window split in time, preprocessing fitted on it, and the tensors `fit`
    takes (shared by the train stage and benchmarks/training.py)."""

    fit_rows: pd.DataFrame
    val_rows: pd.DataFrame
    preprocessor: Preprocessor
    config: ModelConfig
    train: TensorSet
    validation: TensorSet
    augment: Augmentation


def fit_features(
    rows: pd.DataFrame, features: FeatureParams, request: RequestParams | None = None
) -> Preprocessor:
    """Preprocessing fitted on `rows`, carrying the request spec when `request` is given."""
    preprocessor = fit_preprocessor(
        rows,
        features.categorical,
        features.numeric,
        features.min_frequency,
        {name: (d.source, d.transform) for name, d in features.derived.items()},
    )
    if request is None:
        return preprocessor
    return replace(preprocessor, request=build_request_spec(request, preprocessor, rows))


def prepare_training(
    data: DataParams,
    features: FeatureParams,
    model: ModelParams,
    train: TrainParams,
    request: RequestParams | None = None,
) -> PreparedTraining:
    model = announced_model(model, train)  # model.cpu_kind where training runs on the CPU
    window = read_window(data, TRAIN_FILE)
    fit_part, val_part = split_latest(window, train.validation_fraction, data.time)
    preprocessor = fit_features(fit_part, features, request)
    fit_cat, fit_num = preprocessor.transform(fit_part)
    val_cat, val_num = preprocessor.transform(val_part)
    label = data.label
    head = Head.for_labels(
        label.kind, fit_part["label"].to_numpy(), len(label.classes), label.transform
    )
    # `auto` embeddings: prepared as the first candidate; `configure` gives the others
    config = model_config_for(candidate_models(model)[0], preprocessor.cardinalities, fit_num, head)
    return PreparedTraining(
        fit_part,
        val_part,
        preprocessor,
        config,
        TensorSet.from_numpy(fit_cat, fit_num, head.scale(fit_part["label"].to_numpy())),
        TensorSet.from_numpy(val_cat, val_num, head.scale(val_part["label"].to_numpy())),
        augmentation(preprocessor, train),
    )


def configure(prepared: PreparedTraining, model: ModelParams, train: TrainParams) -> ModelConfig:
    """The network config of `model` (as this host trains it) over the prepared window: its
    numeric embedding's bins from the same rows, the same head (tune's trials, candidates)."""
    return model_config_for(
        model_for_host(model, train),
        prepared.preprocessor.cardinalities,
        prepared.train.numeric.cpu().numpy(),
        Head.of(prepared.config),
    )


def augmentation(preprocessor: Preprocessor, train: TrainParams) -> Augmentation:
    """The batch augmentation `train` asks for, at this preprocessing's input positions."""
    return Augmentation(
        *preprocessor.optional_positions,
        optional_rate=train.optional_absent_rate,
        unknown_rate=train.unknown_category_rate,
    )


def code_digest() -> str:
    """sha256 over the maas package's source files: the code a checkpoint was trained with."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def training_fingerprint(
    features: FeatureParams,
    model: ModelParams,
    train: TrainParams,
    data: DataParams,
    lineage: dict[str, Any],
    code: str | None = None,
) -> str:
    """Identifies a training job: a checkpoint resumes only the same params, labels and code
    (`code`: default, the digest of this maas) on the same data."""
    payload = {
        "features": features.model_dump(mode="json"),
        "model": model_for_host(model, train).model_dump(mode="json"),  # the kind trained
        "train": train.model_dump(mode="json", exclude={"device", "num_threads"}),
        "labels": data.label.model_dump(mode="json"),
        "time": data.time.model_dump(mode="json") if data.time else data.split.model_dump(),
        "data": lineage["train_partitions"],
        "code": code if code is not None else code_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
