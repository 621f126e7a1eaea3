"""BentoML service: one registered model version, scored with ONNX Runtime.

Serving imports only bentoml, pydantic, numpy, onnxruntime and this package (`maas.serving`):
no torch, mlflow, prefect, great_expectations or dvc, and nothing is ever unpickled. The
serving files are sha256-checked against the digests recorded at registration before use.

Which model version, the request limits and the batching settings are Bento arguments
(`bentoml build --arg model_tag=...`): `maas package` sets them from params.yaml, they are
stored in the Bento, and the container serves with exactly those. The request and response
models are generated from the task's request spec, which the model version carries (its
preprocessing JSON): the API shows the task's own fields.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, Field, ValidationError

from maas.serving.errors import ArtifactIntegrityError, FeatureError
from maas.serving.guard import API_ROUTES, TOKEN_ENV, ApiGuard, received_body
from maas.serving.inference import PREPROCESSING_FILE, OnnxModel
from maas.serving.prediction_log import PredictionLog
from maas.serving.preprocessing import Preprocessor
from maas.serving.request import MAX_TEXT, RequestSpec
from maas.serving.schema import Schema, build_schema


class ServiceArgs(BaseModel):
    """Build-time arguments of the Bento (see `maas package`); defaults suit `bentoml serve`."""

    model_tag: str = "flight-delay:latest"  # BentoML model holding one version's serving files
    base_image: str = "localhost/maas-base:bookworm"  # FROM of the container image
    max_records: int = Field(1000, ge=1)  # records per request; more is a 400
    workers: int = Field(1, ge=1)
    # OpenTelemetry on the API routes. Off by default: with no exporter configured BentoML
    # samples nothing, yet its middleware costs a large share of requests/s (docs/performance.md).
    tracing: bool = False
    metrics: bool = True  # Prometheus /metrics


ARGS = bentoml.use_arguments(ServiceArgs)


def load_request_spec(model_tag: str) -> tuple[RequestSpec, frozenset[str]]:
    """The request spec the model version carries, and the fields its features read as hhmm
    clock times. Read when the module is imported (the API's models are declared with the
    class); the service checks them again after the digests."""
    folder = Path(bentoml.models.get(model_tag).path)
    data = json.loads((folder / PREPROCESSING_FILE).read_text())
    if not data.get("request"):
        raise ArtifactIntegrityError(f"{model_tag}: {PREPROCESSING_FILE} holds no request spec")
    return RequestSpec.from_dict(data["request"]), Preprocessor.from_dict(data).clock_inputs


SPEC, CLOCK = load_request_spec(ARGS.model_tag)
SCHEMA: Schema = build_schema(SPEC, ARGS.max_records, CLOCK)
PredictRequest = SCHEMA.request
PredictResponse = SCHEMA.response


# Young-generation threshold of the cyclic garbage collector in a serving worker. Requests
# allocate thousands of short-lived objects (1,000 record models in a bulk request) that
# reference counting frees; with Python's default (700) the collector still ran every few
# hundred allocations and, after bulk traffic, raised single-record tail latency for good
# (measured: docs/serving.md).
GC_THRESHOLDS = (100_000, 50, 1000)


def settle_garbage_collector() -> None:
    """Everything loaded so far (the model, BentoML, pydantic) lives as long as the process:
    freeze it out of the collector's passes, and collect young objects far less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


LIVE: dict[str, Any] = {}  # this worker's service instance, once loaded and warmed up


def fast_predict(body: bytes) -> bytes | None:
    """/predict for a valid body in one step: pydantic-core parses and validates the JSON
    bytes, one featurize + ONNX call, the response serialized straight to bytes. None: not
    handled here (no live service yet, or a body BentoML must answer, e.g. with a 400).
    Anything the request model refuses, an unknown top-level key included, goes to BentoML's
    own handler, which answers."""
    service = LIVE.get("service")
    if service is None:
        return None
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError:
        return None
    records = SCHEMA.records(request)
    try:
        scored = service.score(records)
    except FeatureError:  # BentoML's handler answers it (a 400 naming the field)
        return None
    answer = SCHEMA.to_response(service.version, *scored).model_dump_json().encode()
    if service.prediction_log is not None:  # logs the validated records, not the body again
        service.prediction_log.write(body, answer, records)
    return answer


# Image: the base image already holds Python and uv. A `distro` BentoML has no package table
# for keeps it from adding an apt-get step (build-essential, git) the service never uses;
# tests/e2e/test_packaging.py checks the generated Dockerfile still has none.
IMAGE = bentoml.images.Image(base_image=ARGS.base_image, distro="maas-prebuilt")


# The service's settings (benchmarks/service_variants.py builds its alternatives with them).
SERVICE_SETTINGS: dict[str, Any] = {
    "image": IMAGE,
    "workers": ARGS.workers,
    "traffic": {"timeout": 30},
    "logging": {"access": {"enabled": False}},
    "tracing": {} if ARGS.tracing else {"excluded_urls": API_ROUTES},
    "metrics": {"enabled": ARGS.metrics},
}


@bentoml.service(**SERVICE_SETTINGS)
class ModelService:
    bento_model = bentoml.models.BentoModel(ARGS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.bento_model.path)
        self.info: dict[str, Any] = json.loads((folder / "metadata.json").read_text())
        self.model = OnnxModel.load(folder, expected_digests=self.info["sha256"])
        preprocessor = self.model.preprocessor
        if (preprocessor.request, preprocessor.clock_inputs) != (SCHEMA.spec, SCHEMA.clock):
            raise ArtifactIntegrityError("the request spec changed after the service started")
        self.version = str(self.info["model_version"])
        # Every served prediction, when the deploy target mounts a log folder (docs/monitoring.md)
        self.prediction_log = PredictionLog.from_env(
            self.info["registered_model"], self.version, SCHEMA.spec.body_key, SCHEMA.spec.names
        )
        # Warm-up: /readyz turns ready only once a real prediction has run, on a record of
        # the task's own (kept with the request spec at training).
        warmup = SCHEMA.record.model_validate(SCHEMA.spec.example)
        self.model.predict(SCHEMA.to_columns([warmup]))
        LIVE["service"] = self  # the fast path answers from now on
        settle_garbage_collector()

    def score(self, records: list[BaseModel]) -> tuple[np.ndarray, list[list[str]]]:
        # Values the schema accepts but outside the bounds the model was trained with
        # (features.numeric) count as missing, exactly as in training.
        return self.model.score(SCHEMA.to_columns(records))

    def score_or_400(self, records: list[BaseModel]) -> tuple[np.ndarray, list[list[str]]]:
        """A value the schema let through that featurizing cannot read is the client's: 400."""
        try:
            return self.score(records)
        except FeatureError as error:
            raise InvalidArgument(str(error)) from None

    @bentoml.api(input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, **body: Any) -> Any:
        """The model's prediction for each record, in request order."""
        # async: one scoring call is far shorter than a thread hop, so it runs on the event loop.
        records = body[SCHEMA.spec.body_key]
        response = SCHEMA.to_response(self.version, *self.score_or_400(records))
        if self.prediction_log is not None:  # the fast path logs what it answers itself
            # as the fast path logs it: the validated records' declared fields, and the task's
            # keys (which join late labels) from the body as sent where no field holds them
            sent = received_body()
            if sent is None:  # called in process, not through the guard: the records
                request = {SCHEMA.spec.body_key: [record.model_dump() for record in records]}
                sent = json.dumps(request).encode()
            self.prediction_log.write(sent, response.model_dump_json().encode(), records)
        return response

    @bentoml.api
    async def metadata(self) -> dict[str, Any]:
        """Which model version this is, its lineage and the digests verified at start."""
        meta = self.info
        return {
            "model_name": meta["registered_model"],
            "model_version": self.version,
            "kind": SCHEMA.spec.kind,
            "request": SCHEMA.spec.to_dict(),
            "run_id": meta["run_id"],
            "git_commit": meta.get("git_commit", ""),
            "train_partitions": json.loads(meta.get("train_partitions") or "{}"),
            "test_partitions": json.loads(meta.get("test_partitions") or "{}"),
            "validation_status": meta.get("validation_status", ""),
            "test_metrics": meta.get("test_metrics", {}),
            "sha256": meta["sha256"],
        }


_service: Any = ModelService  # a bentoml Service object (typed as the class)
# A record's fields at their longest (MAX_TEXT for a string, 32 for a number) plus their names
# and formatting, and 64 KB more: still bounds what one request can cost.
RECORD_BYTES = sum(
    len(f.name) + 16 + (32 if f.type in ("int", "float") else MAX_TEXT) for f in SCHEMA.spec.fields
)
MAX_BODY = 64 * 1024 + ARGS.max_records * RECORD_BYTES
_service.add_asgi_middleware(
    ApiGuard, token=os.environ.get(TOKEN_ENV) or None, max_body=MAX_BODY, fast=fast_predict
)
