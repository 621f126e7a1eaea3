"""Alternatives to the shipped service, for benchmarks/serving.py only (never packaged).

Each keeps the shipped service's shape — the same BentoML model folder (digests verified),
request schema (generated from the task), featurizing, `ApiGuard` middleware and service
settings — and changes one thing:

- `RuntimeService` (through the shipped fast path): the model runtime, from
  $MAAS_BENCH_RUNTIME: `onnx` (what ships), `onnx-int8` (the graph dynamically quantized at
  start by `maas.pipeline.training.quantize.quantize_int8`) or `torch` (eager PyTorch from
  the version's safetensors weights, $MAAS_BENCH_WEIGHTS).
- `BatchingService`: BentoML adaptive batching (`batchable=True`): requests are merged into
  one model call of up to 1,000 records, waiting at most $MAAS_BENCH_BATCH_MS (default 20).
  Its response is the list of predictions (a batchable API returns one item per input). Its
  input is the shipped request model (the task's body key): BentoML batches the one list it
  holds and calls the API with the merged list.

    bentoml serve benchmarks.service_variants:RuntimeService --arg model_tag=flight-delay:v1
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from maas.serving.guard import TOKEN_ENV, ApiGuard
from maas.serving.inference import OnnxModel, create_session, verify_digests
from maas.serving.service import (
    ARGS,
    LIVE,
    MAX_BODY,
    SCHEMA,
    SERVICE_SETTINGS,
    PredictRequest,
    PredictResponse,
    fast_predict,
    settle_garbage_collector,
)

Record = SCHEMA.record
Prediction = SCHEMA.prediction


def warm_up(model: Any) -> None:
    model.score(SCHEMA.to_columns([Record.model_validate(SCHEMA.spec.example)]))


class TorchModel:
    """Eager PyTorch behind the same `score(columns)` as `OnnxModel`."""

    def __init__(self, folder: Path, weights: Path) -> None:
        import torch

        from maas.pipeline.training.export import load_weights
        from maas.pipeline.training.model import ModelConfig, ServingNet
        from maas.serving.preprocessing import Preprocessor

        torch.set_num_threads(1)  # as the ONNX Runtime session (one intra-op thread)
        self.torch = torch
        self.preprocessor = Preprocessor.from_dict(
            json.loads((folder / "preprocessing.json").read_text())
        )
        config = ModelConfig.load(folder / "model_config.json")
        self.net = ServingNet(load_weights(config, weights)).eval()

    def score(self, columns: Any) -> tuple[np.ndarray, list[list[str]]]:
        cat, num = self.preprocessor.transform(columns)
        with self.torch.inference_mode():
            probs = self.net(self.torch.from_numpy(cat), self.torch.from_numpy(num)).numpy()
        return probs, self.preprocessor.unknown_inputs(cat)


def load_model(folder: Path, info: dict[str, Any]) -> Any:
    runtime = os.environ.get("MAAS_BENCH_RUNTIME", "onnx")
    if runtime == "onnx":
        return OnnxModel.load(folder, expected_digests=info["sha256"])
    verify_digests(folder, info["sha256"])
    if runtime == "onnx-int8":
        from maas.pipeline.training.quantize import quantize_int8

        quantized = Path(tempfile.mkdtemp()) / "model.int8.onnx"
        quantize_int8(folder / "model.onnx", quantized)
        model = OnnxModel.load(folder)
        model.session = create_session(quantized)
        return model
    if runtime == "torch":
        return TorchModel(folder, Path(os.environ["MAAS_BENCH_WEIGHTS"]))
    raise ValueError(f"MAAS_BENCH_RUNTIME={runtime!r}: onnx | onnx-int8 | torch")


@bentoml.service(**SERVICE_SETTINGS)
class RuntimeService:
    bento_model = bentoml.models.BentoModel(ARGS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.bento_model.path)
        self.info: dict[str, Any] = json.loads((folder / "metadata.json").read_text())
        self.model = load_model(folder, self.info)
        self.version = str(self.info["model_version"])
        self.prediction_log = None  # the shipped fast path reads it: off, as in serving.py's maas
        warm_up(self.model)
        LIVE["service"] = self  # the same fast path as the shipped service
        settle_garbage_collector()

    def score(self, records: list[Any]) -> tuple[np.ndarray, list[list[str]]]:
        probs, unknown = self.model.score(SCHEMA.to_columns(records))
        return np.asarray(probs), unknown

    @bentoml.api(input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, **body: Any) -> Any:
        return SCHEMA.to_response(self.version, *self.score(body[SCHEMA.spec.body_key]))


BATCH_MS = int(os.environ.get("MAAS_BENCH_BATCH_MS", "20"))


@bentoml.service(**SERVICE_SETTINGS)
class BatchingService:
    bento_model = bentoml.models.BentoModel(ARGS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.bento_model.path)
        info = json.loads((folder / "metadata.json").read_text())
        self.model = OnnxModel.load(folder, expected_digests=info["sha256"])
        warm_up(self.model)
        settle_garbage_collector()

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=1000,
        max_latency_ms=BATCH_MS,
        input_spec=PredictRequest,
    )
    async def predict(self, records: list[Record]) -> list[Prediction]:  # type: ignore[valid-type]
        probs, unknown = self.model.score(SCHEMA.to_columns(records))
        response = SCHEMA.to_response("", probs, unknown)
        return list(response.predictions)  # type: ignore[attr-defined]


# RuntimeService answers through the shipped fast path; BatchingService must not (the fast
# path would bypass BentoML's batching, which is what it measures).
_services: list[tuple[Any, Any]] = [(RuntimeService, fast_predict), (BatchingService, None)]
for _service, _fast in _services:  # bentoml Service objects (typed as the classes)
    _service.add_asgi_middleware(
        ApiGuard, token=os.environ.get(TOKEN_ENV) or None, max_body=MAX_BODY, fast=_fast
    )
