"""BentoML service: one registered model version, scored with ONNX Runtime.

Serving imports only bentoml, pydantic, numpy, onnxruntime and maas.features/inference: no
torch, mlflow, prefect, great_expectations or dvc, and nothing is ever unpickled. The
serving files are sha256-checked against the digests recorded at registration before use.

Which model version, the request limits and the batching settings are Bento arguments
(`bentoml build --arg model_tag=...`): `maas package` sets them from params.yaml, they are
stored in the Bento, and the container serves with exactly those.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from maas.inference import OnnxModel

THRESHOLD = 0.5  # the same decision threshold as the registered pyfunc model


class ServiceArgs(BaseModel):
    """Build-time arguments of the Bento (see `maas package`); defaults suit `bentoml serve`."""

    model_tag: str = "flight-delay:latest"  # BentoML model holding one version's serving files
    base_image: str = "localhost/maas-base:bookworm"  # FROM of the container image
    max_records: int = Field(1000, ge=1)  # flights per request; more is a 400
    workers: int = Field(1, ge=1)
    # OpenTelemetry on the API routes. Off by default: with no exporter configured BentoML
    # samples nothing, yet its middleware cost ~40% of requests/s (benchmarks/serving.py).
    tracing: bool = False
    metrics: bool = True  # Prometheus /metrics


ARGS = bentoml.use_arguments(ServiceArgs)


def _number(low: float, high: float) -> Any:
    return Field(None, ge=low, le=high, allow_inf_nan=False)


class Flight(BaseModel):
    """A scheduled flight: what is known before departure (weather fields may be null)."""

    model_config = ConfigDict(extra="ignore")

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    sched_dep_time: int = Field(ge=0, le=2359)
    sched_arr_time: int = Field(ge=0, le=2359)
    carrier: str = Field(min_length=1, max_length=8)
    origin: str = Field(min_length=1, max_length=8)
    dest: str = Field(min_length=1, max_length=8)
    distance: float = Field(gt=0, le=20000, allow_inf_nan=False)
    temp: float | None = _number(-100, 150)
    dewp: float | None = _number(-100, 150)
    humid: float | None = _number(0, 100)
    wind_dir: float | None = _number(0, 360)
    wind_speed: float | None = _number(0, 500)
    wind_gust: float | None = _number(0, 500)
    precip: float | None = _number(0, 50)
    pressure: float | None = _number(800, 1200)
    visib: float | None = _number(0, 100)


class Prediction(BaseModel):
    delay_probability: float
    delayed: bool


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


FIELDS = list(Flight.model_fields)
Flights = Annotated[list[Flight], Field(min_length=1, max_length=ARGS.max_records)]

# Scored once at start-up: /readyz turns ready only after a real prediction ran.
WARMUP_FLIGHT = Flight(month=1, day=1, sched_dep_time=800, sched_arr_time=1100, carrier="AA",
                       origin="JFK", dest="LAX", distance=2475)  # fmt: skip


def to_columns(flights: list[Flight]) -> dict[str, list[Any]]:
    """Records → columns for one vectorized featurize + ONNX call."""
    rows = [flight.__dict__ for flight in flights]
    return {name: [row[name] for row in rows] for name in FIELDS}


def to_response(version: str, probs: np.ndarray) -> PredictResponse:
    """Predictions in request order. Built without re-validation: the values come from the
    model (floats) and the threshold (bools), and validating 1,000 of them cost ~20% of a
    bulk request (profiled)."""
    predictions = [
        Prediction.model_construct(delay_probability=p, delayed=p >= THRESHOLD)
        for p in probs.astype(float).tolist()
    ]
    return PredictResponse.model_construct(model_version=version, predictions=predictions)


# Image: the base image already holds Python and uv. A `distro` BentoML has no package table
# for keeps it from adding an apt-get step (build-essential, git) the service never uses;
# tests/unit/test_service.py checks the generated Dockerfile still has none.
IMAGE = bentoml.images.Image(base_image=ARGS.base_image, distro="maas-prebuilt")


API_ROUTES = ["/predict", "/metadata"]


@bentoml.service(
    image=IMAGE,
    workers=ARGS.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    tracing={} if ARGS.tracing else {"excluded_urls": API_ROUTES},
    metrics={"enabled": ARGS.metrics},
)
class FlightDelayService:
    bento_model = bentoml.models.BentoModel(ARGS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.bento_model.path)
        self.info: dict[str, Any] = json.loads((folder / "metadata.json").read_text())
        self.model = OnnxModel.load(folder, expected_digests=self.info["sha256"])
        self.version = str(self.info["model_version"])
        # Warm-up: /readyz turns ready only once a real prediction has run.
        self.model.predict_proba(to_columns([WARMUP_FLIGHT]))
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise pause requests (p99).
        gc.freeze()

    def score(self, flights: list[Flight]) -> np.ndarray:
        # Weather readings the schema accepts but outside the bounds the model was trained
        # with (features.numeric) count as missing, exactly as in training.
        return self.model.predict_proba(to_columns(flights))

    @bentoml.api
    async def predict(self, flights: Flights) -> PredictResponse:
        """Delay probability for each flight, in request order."""
        # async: the call takes ~0.1 ms, so running it on the event loop beats a thread hop.
        return to_response(self.version, self.score(flights))

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
