"""BentoML service: one registered model version, scored with ONNX Runtime.

Serving imports only bentoml, pydantic, numpy, onnxruntime and this package (`maas.serving`):
no torch, mlflow, prefect, great_expectations or dvc, and nothing is ever unpickled. The
serving files are sha256-checked against the digests recorded at registration before use.

Which model version, the request limits and the batching settings are Bento arguments
(`bentoml build --arg model_tag=...`): `maas package` sets them from params.yaml, they are
stored in the Bento, and the container serves with exactly those.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maas.serving.guard import API_ROUTES, TOKEN_ENV, ApiGuard
from maas.serving.inference import OnnxModel
from maas.serving.schema import WARMUP_FLIGHT, Flight, PredictResponse, to_columns, to_response


class ServiceArgs(BaseModel):
    """Build-time arguments of the Bento (see `maas package`); defaults suit `bentoml serve`."""

    model_tag: str = "flight-delay:latest"  # BentoML model holding one version's serving files
    base_image: str = "localhost/maas-base:bookworm"  # FROM of the container image
    max_records: int = Field(1000, ge=1)  # flights per request; more is a 400
    workers: int = Field(1, ge=1)
    # OpenTelemetry on the API routes. Off by default: with no exporter configured BentoML
    # samples nothing, yet its middleware costs a large share of requests/s (docs/performance.md).
    tracing: bool = False
    metrics: bool = True  # Prometheus /metrics


ARGS = bentoml.use_arguments(ServiceArgs)


Flights = Annotated[list[Flight], Field(min_length=1, max_length=ARGS.max_records)]


# Young-generation threshold of the cyclic garbage collector in a serving worker. Requests
# allocate thousands of short-lived objects (1,000 Flight models in a bulk request) that
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


class PredictRequest(BaseModel):
    """The body of /predict as the fast path reads it (see `ApiGuard`). Anything it refuses,
    an unknown top-level key included, goes to BentoML's own handler, which answers."""

    model_config = ConfigDict(extra="forbid")

    flights: Flights


LIVE: dict[str, Any] = {}  # this worker's service instance, once loaded and warmed up


def fast_predict(body: bytes) -> bytes | None:
    """/predict for a valid body in one step: pydantic-core parses and validates the JSON
    bytes, one featurize + ONNX call, the response serialized straight to bytes. None: not
    handled here (no live service yet, or a body BentoML must answer, e.g. with a 400)."""
    service = LIVE.get("service")
    if service is None:
        return None
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError:
        return None
    return to_response(service.version, *service.score(request.flights)).model_dump_json().encode()


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
class FlightDelayService:
    bento_model = bentoml.models.BentoModel(ARGS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.bento_model.path)
        self.info: dict[str, Any] = json.loads((folder / "metadata.json").read_text())
        self.model = OnnxModel.load(folder, expected_digests=self.info["sha256"])
        self.version = str(self.info["model_version"])
        # Warm-up: /readyz turns ready only once a real prediction has run.
        self.model.predict_proba(to_columns([WARMUP_FLIGHT]))
        LIVE["service"] = self  # the fast path answers from now on
        settle_garbage_collector()

    def score(self, flights: list[Flight]) -> tuple[np.ndarray, list[list[str]]]:
        # Weather readings the schema accepts but outside the bounds the model was trained
        # with (features.numeric) count as missing, exactly as in training.
        return self.model.score(to_columns(flights))

    @bentoml.api
    async def predict(self, flights: Flights) -> PredictResponse:
        """Delay probability for each flight, in request order."""
        # async: one scoring call is far shorter than a thread hop, so it runs on the event loop.
        return to_response(self.version, *self.score(flights))

    @bentoml.api
    async def metadata(self) -> dict[str, Any]:
        """Which model version this is, its lineage and the digests verified at start."""
        meta = self.info
        return {
            "model_name": meta["registered_model"],
            "model_version": self.version,
            "run_id": meta["run_id"],
            "git_commit": meta.get("git_commit", ""),
            "train_partitions": json.loads(meta.get("train_partitions") or "{}"),
            "test_partitions": json.loads(meta.get("test_partitions") or "{}"),
            "validation_status": meta.get("validation_status", ""),
            "test_metrics": meta.get("test_metrics", {}),
            "sha256": meta["sha256"],
        }


_service: Any = FlightDelayService  # a bentoml Service object (typed as the class)
# A flight with every field is well under 1 KB of JSON: 2 KB a flight plus 64 KB leaves room
# for formatting, and still bounds what one request can cost.
MAX_BODY = 64 * 1024 + ARGS.max_records * 2048
_service.add_asgi_middleware(
    ApiGuard, token=os.environ.get(TOKEN_ENV) or None, max_body=MAX_BODY, fast=fast_predict
)
