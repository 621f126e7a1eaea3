"""Infra-validation: the image is started, must turn ready, and must answer the version's stored
test sample exactly as the registered MLflow pyfunc does, before it may serve."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maas.config import PackagingParams, ServingParams
from maas.errors import PackagingError
from maas.net import free_port
from maas.release import containers
from maas.serving.inference import output_difference
from maas.serving.request import RequestSpec
from maas.tracking.serving_code import score_with


def sample_records(frame: Any, rows: int) -> list[dict[str, Any]]:
    """Test rows as JSON records (NaN → null, numpy → Python)."""
    records: list[dict[str, Any]] = json.loads(frame.head(rows).to_json(orient="records"))
    return records


def expected_predictions(
    model_uri: str, rows: int, code: Path, model_dir: Path
) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """The version's stored test sample and the outputs the registered model gives each
    record (one value, or one per class): its verified artifacts (`model_dir`) scored by its
    recorded serving code. The example is read from the model's metadata: no code from the
    artifact store runs here."""
    import pandas as pd
    from mlflow.models import Model

    example = Model.load(model_uri).load_input_example(model_uri)
    if example is None or len(example) == 0:
        raise PackagingError(f"{model_uri} has no input example to validate the image with")
    records = sample_records(example, rows)
    outputs = score_with(code, model_dir, pd.DataFrame(records))
    return records, [[float(v) for v in np.atleast_1d(row)] for row in outputs]


def served_values(prediction: dict[str, Any], request: RequestSpec) -> list[float]:
    """One served prediction's numbers, as `expected_predictions` gives them: the positive
    class's probability, each class's probability in the model's order, or the value."""
    value = prediction[request.output_fields[0]]
    if request.kind == "multiclass":
        return [float(value[name]) for name in request.classes]
    return [float(value)]


@dataclass
class InfraValidation:
    """The outcome of replaying a version's sample against its running image."""

    passed: bool
    reason: str
    latency_ms: dict[str, float]
    max_abs_diff: float | None = None


def validate_endpoint(
    base_url: str,
    version: str,
    records: list[dict[str, Any]],
    expected: list[list[float]],
    tolerance: float,
    latency_requests: int,
    max_records: int,
    request: RequestSpec,
) -> InfraValidation:
    """Replay the sample against a ready service (the task's body key and output names);
    compare; time single-record requests."""
    import httpx

    key = request.body_key
    with httpx.Client(base_url=base_url, timeout=30) as http:
        got: list[list[float]] = []
        for start in range(0, len(records), max_records):
            response = http.post("/predict", json={key: records[start : start + max_records]})
            if response.status_code != 200:
                return InfraValidation(
                    False, f"/predict answered {response.status_code}: {response.text[:200]}", {}
                )
            body = response.json()
            if body.get("model_version") != version:
                return InfraValidation(
                    False, f"served model_version {body.get('model_version')!r}, not {version}", {}
                )
            got += [served_values(p, request) for p in body["predictions"]]
        diff = output_difference(got, expected)
        if diff > tolerance:
            return InfraValidation(
                False,
                f"predictions differ from the registered model by {diff:.3g} > {tolerance}",
                {},
                diff,
            )
        timings = []
        for index in range(latency_requests):
            payload = {key: [records[index % len(records)]]}
            started = time.perf_counter()
            response = http.post("/predict", json=payload)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                return InfraValidation(False, f"single-record request {response.status_code}", {})
    timings.sort()
    latency = {
        "p50": round(timings[len(timings) // 2], 3),
        "p99": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 3),
    }
    return InfraValidation(True, f"{len(records)} rows match the registered model", latency, diff)


def infra_validate(
    runtime: str,
    image: str,
    version: str,
    records: list[dict[str, Any]],
    expected: list[list[float]],
    packaging: PackagingParams,
    serving: ServingParams,
    request: RequestSpec,
) -> InfraValidation:
    """Start the image on a free port, wait for /readyz, replay the sample, stop it."""
    settings = packaging.infra_validation
    port = free_port()
    name = f"maas-validate-{image.split('/')[-1].replace(':', '-')}-{port}"
    try:
        container = containers.run_container(runtime, image, name, port, network=packaging.network)
    except containers.ContainerError as error:  # created, then failed to start: remove it
        containers.remove_container(runtime, name)
        return InfraValidation(False, f"the container did not start: {error}", {})
    base_url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        try:
            ready = containers.wait_ready(
                base_url,
                settings.ready_timeout_s,
                alive=lambda: containers.container_running(runtime, container),
            )
        except containers.ContainerError as error:
            logs = containers.container_logs(runtime, container)
            return InfraValidation(False, f"{error}: {logs[-500:]}", {})
        if not ready:
            return InfraValidation(
                False, f"/readyz not ready within {settings.ready_timeout_s:.0f}s", {}
            )
        cold_start = time.perf_counter() - started
        report = validate_endpoint(
            base_url,
            version,
            records,
            expected,
            settings.tolerance,
            settings.latency_requests,
            serving.max_records,
            request,
        )
        report.latency_ms["cold_start_to_ready"] = round(cold_start * 1000, 1)
        return report
    finally:
        containers.remove_container(runtime, container)
