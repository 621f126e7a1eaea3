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
import hmac
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

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


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` admits 1665.0; `true`, `"1665"` and 1665.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else goes to strict int validation, which names the field


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _number(low: float, high: float) -> Any:
    return Field(None, ge=low, le=high, allow_inf_nan=False)


class Flight(BaseModel):
    """A scheduled flight: what is known before departure (weather fields may be null).

    Strict types: `false`, `"12"` or `12.5` are not a month (lax pydantic would coerce them;
    schemathesis found `"visib": false` scored as 0); 12.0 is (JSON Schema's integer), and
    integers are fine for float fields."""

    model_config = ConfigDict(extra="ignore", strict=True)

    month: WholeNumber = Field(ge=1, le=12)
    day: WholeNumber = Field(ge=1, le=31)
    sched_dep_time: WholeNumber = Field(ge=0, le=2359)
    sched_arr_time: WholeNumber = Field(ge=0, le=2359)
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


# Young-generation threshold of the cyclic garbage collector in a serving worker. Requests
# allocate thousands of short-lived objects (1,000 Flight models in a bulk request) that
# reference counting frees; with Python's default (700) the collector still ran every few
# hundred allocations, and after bulk traffic single-record p99 rose from 4 to 20-33 ms.
# Measured with 100,000: p99 4.3-4.8 ms after bulk traffic, bulk requests +25% (143 vs 115/s).
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
    return to_response(service.version, service.score(request.flights)).model_dump_json().encode()


# Image: the base image already holds Python and uv. A `distro` BentoML has no package table
# for keeps it from adding an apt-get step (build-essential, git) the service never uses;
# tests/unit/test_service.py checks the generated Dockerfile still has none.
IMAGE = bentoml.images.Image(base_image=ARGS.base_image, distro="maas-prebuilt")


API_ROUTES = ["/predict", "/metadata"]
TOKEN_ENV = "MAAS_API_TOKEN"


class ApiGuard:
    """ASGI middleware in front of the BentoML app (one layer, a few comparisons a request):

    - Bearer auth: with $MAAS_API_TOKEN set where the service starts (`podman run -e
      MAAS_API_TOKEN`), /predict and /metadata need `Authorization: Bearer <token>`; the
      token is never in the image, the Bento or a tag. Health probes (/livez, /readyz) and
      /metrics stay open for orchestrators and scrapers.
    - A multipart body to an API route gets 415 (BentoML answered 500 when the boundary was
      missing: found by schemathesis).
    - Bodies are bounded: a declared Content-Length over `max_body` gets 413 before anything
      is read; a chunked body is counted as it arrives and cut off with 413 at the limit, so
      a huge request costs at most `max_body` bytes of memory.
    - Fast path: a POST /predict with a declared JSON body is answered by `fast_predict`
      (pydantic-core validates the raw bytes; no BentoML request/response handling). It
      sits inside BentoML's own middlewares (metrics, timeout) and answers exactly what the
      API answers; any body it does not accept is replayed to BentoML's handler, so every
      error is still BentoML's. Measured: +50-60% requests/s (benchmarks/serving.py).
    - /docs.json tells the truth: OpenAPI 3.1 (pydantic's schemas are JSON Schema 2020-12:
      numeric `exclusiveMinimum`, `type: null`), and the 400 body's `detail` is pydantic's
      list of errors naming each field, not the string BentoML 1.4 declares.
    """

    def __init__(
        self,
        app: Any,
        token: str | None = None,
        max_body: int = 4 << 20,
        fast: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body
        self.fast = fast

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path in API_ROUTES:
            headers = dict(scope["headers"])
            if self.expected is not None and not hmac.compare_digest(
                headers.get(b"authorization", b""), self.expected
            ):
                challenge = [(b"www-authenticate", b'Bearer realm="maas"')]
                return await _reply(send, 401, "missing or invalid bearer token", challenge)
            if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                return await _reply(send, 415, "send the request as application/json")
            declared = headers.get(b"content-length")
            if declared is not None:
                if not declared.isdigit() or int(declared) > self.max_body:
                    return await _reply(send, 413, f"body over {self.max_body} bytes")
                if (
                    self.fast is not None
                    and path == "/predict"
                    and scope.get("method") == "POST"
                    and headers.get(b"content-type", b"").lower().startswith(b"application/json")
                ):
                    return await self._fast_path(scope, receive, send)
                return await self.app(scope, receive, send)
            return await self._counting(scope, receive, send)  # chunked: count as it arrives
        return await self._other(path, scope, receive, send)

    async def _fast_path(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            answer = self.fast(body) if self.fast is not None else None
        except Exception:  # scoring failed: BentoML's handler runs it again and reports it
            answer = None
        if answer is not None:
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(answer)).encode())]  # fmt: skip
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        replayed = False

        async def replay() -> dict[str, Any]:  # the body once more, then the real channel
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _counting(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen = 0
        refused = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body and not refused:
                refused = True
                await _reply(send, 413, f"body over {self.max_body} bytes")
                return {"type": "http.disconnect"}
            return dict(message)

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:  # after our 413, whatever the app answers is dropped
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _other(self, path: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if path == "/docs.json" and scope.get("method") == "GET":
            return await self.app(scope, receive, _patching_openapi(send))
        return await self.app(scope, receive, send)


async def _reply(
    send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _patching_openapi(send: Any) -> Any:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def capture(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = patch_openapi(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return capture


ERROR_DETAIL = {
    "title": "Error Detail",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
}


def patch_openapi(body: bytes) -> bytes:
    spec = json.loads(body)
    spec["openapi"] = "3.1.0"
    for item in spec.get("paths", {}).values():  # a body with required fields is required
        request = item.get("post", {}).get("requestBody", {})
        schema = request.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("required"):
            request["required"] = True
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in {"InvalidArgument", "NotFound", "InternalServerError"}:
            schema.get("properties", {})["detail"] = ERROR_DETAIL
    return json.dumps(spec).encode()


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


_service: Any = FlightDelayService  # a bentoml Service object (typed as the class)
# A full request of max_records flights with every field is ~0.35 KB a flight: 2 KB a flight
# plus 64 KB leaves room for formatting, and still bounds what one request can cost.
MAX_BODY = 64 * 1024 + ARGS.max_records * 2048
_service.add_asgi_middleware(
    ApiGuard, token=os.environ.get(TOKEN_ENV) or None, max_body=MAX_BODY, fast=fast_predict
)
