"""The names the Grafana dashboard (deploy/grafana/maas.json) and the Prometheus test read off
a replica's /metrics are the ones the real service exports, on both of its paths."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.unit.serving.apps import asgi_app, records_of

HISTOGRAM = "bentoml_service_request_duration_seconds"


def predict_counts(text: str) -> dict[str, float]:
    """The /predict histogram's sample count per response code."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_count" and sample.labels["endpoint"] == "/predict":
                code = sample.labels["http_response_code"]
                counts[code] = counts.get(code, 0.0) + sample.value
    return counts


def test_predict_requests_land_in_the_histogram_the_dashboard_reads(
    packaged: Any, module: Any
) -> None:
    """In a container BentoML collects its processes' metrics from files (Prometheus's
    multiprocess mode, set up by `bentoml serve`); in this process the same series are read
    from the process's registry."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.server.metrics.prometheus import PrometheusClient

    saved = BentoMLContainer.metrics_client.get()
    BentoMLContainer.metrics_client.set(PrometheusClient(multiproc=False))
    try:
        *_, records = packaged
        rows = records_of(records.head(2))
        with TestClient(asgi_app(module)) as client:
            before = predict_counts(client.get("/metrics").text)
            fast = client.post("/predict", json={"flights": rows})  # the fast path (declared JSON)
            plain = client.post(  # BentoML's own handler
                "/predict",
                content=json.dumps({"flights": rows}),
                headers={"content-type": "text/plain"},
            )
            bad = client.post("/predict", json={"flights": [{"nothing": 1}]})
            assert (fast.status_code, plain.status_code, bad.status_code) == (200, 200, 400)
            text = client.get("/metrics").text
    finally:
        BentoMLContainer.metrics_client.set(saved)
    after = predict_counts(text)
    assert after.get("200", 0) - before.get("200", 0) == 2
    assert after.get("400", 0) - before.get("400", 0) == 1
    assert f'{HISTOGRAM}_bucket{{endpoint="/predict"' in text
