"""The BentoML service class, instantiated directly on a real BentoML model store. Its module is
imported once the model exists: the request models are generated from the model's spec."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from maas.serving.errors import ArtifactIntegrityError
from maas.serving.inference import ONNX_FILE
from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS
from tests.unit.serving.apps import MODEL, records_of


def Service(module):
    return module.ModelService()


def flights_of(module, rows: list[dict]) -> list:
    return module.PredictRequest.model_validate({"flights": rows}).flights


def predict(service, rows: list[dict]) -> dict:
    from maas.serving import service as module

    body = asyncio.run(service.predict(flights=flights_of(module, rows)))
    return body.model_dump()


def test_service_predicts_like_the_registered_pyfunc(packaged, module) -> None:
    import mlflow

    registry, _, version, _, records = packaged
    service = Service(module)
    rows = records_of(records.head(50))
    body = predict(service, rows)
    assert body["model_version"] == str(version.version)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version.version}")
    expected = pyfunc.predict(records.head(50))
    got = np.array([p["delay_probability"] for p in body["predictions"]])
    assert np.max(np.abs(got - expected["delay_probability"].to_numpy())) <= 1e-6
    assert [p["delayed"] for p in body["predictions"]] == list(expected["delayed"])


def test_unknown_categories_and_missing_weather_get_defined_predictions(packaged, module) -> None:
    *_, records = packaged
    service = Service(module)
    base = {k: v for k, v in records_of(records.head(1))[0].items() if k in RECORD_FIELDS}
    unknown = {**base, "carrier": "ZZ", "dest": "XYZ"}
    nulls = {**base, **dict.fromkeys(WEATHER_FIELDS)}
    body = predict(service, [base, unknown, nulls])
    probs = [p["delay_probability"] for p in body["predictions"]]
    assert all(0 < p < 1 and math.isfinite(p) for p in probs)
    assert probs[0] == probs[2]  # absent weather fields and explicit nulls are the same thing


def test_metadata_reports_lineage_and_verified_digests(packaged, module) -> None:
    _, _, version, _, _ = packaged
    meta = asyncio.run(Service(module).metadata())
    assert meta["model_name"] == MODEL and meta["model_version"] == str(version.version)
    assert meta["run_id"] == version.run_id and meta["git_commit"] == "abc123"
    assert meta["test_partitions"] == {"2013-12": "x"}
    assert meta["sha256"][ONNX_FILE] == version.tags[f"sha256.{ONNX_FILE}"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sched_dep_time": 2400}, "sched_dep_time"),
        ({"carrier": ""}, "carrier"),
        ({"distance": "far"}, "distance"),
        ({"temp": float("nan")}, "temp"),
        ({"wind_speed": float("inf")}, "wind_speed"),
        ({"humid": "wet"}, "humid"),  # (out-of-range readings score as missing: a warn range)
        ({"visib": False}, "visib"),  # found by schemathesis: lax pydantic scored it as 0
        ({"sched_arr_time": "12"}, "sched_arr_time"),
        ({"sched_dep_time": 2.5}, "sched_dep_time"),
        ({"carrier": 7}, "carrier"),
        ({"distance": True}, "distance"),
        ({"distance": 9000}, "distance"),  # outside the task's blocking range (10..6000)
    ],
)
def test_schema_rejects_bad_values_naming_the_field(module, change: dict, field: str) -> None:
    record = {
        "sched_dep_time": 900,
        "sched_arr_time": 1200,
        "carrier": "AA",
        "origin": "JFK",
        "dest": "LAX",
        "distance": 2475,
    }
    with pytest.raises(ValidationError, match=field):
        flights_of(module, [{**record, **change}])
    missing = {k: v for k, v in record.items() if k != "dest"}
    with pytest.raises(ValidationError, match="dest"):
        flights_of(module, [missing])


def test_whole_floats_are_integers_as_in_json_schema(module) -> None:
    record = {
        "sched_dep_time": 900.0,
        "sched_arr_time": 1200,
        "carrier": "AA",
        "origin": "JFK",
        "dest": "LAX",
        "distance": 2475.0,
    }
    flight = flights_of(module, [record])[0]
    assert flight.sched_dep_time == 900 and isinstance(flight.sched_dep_time, int)
    assert flight.distance == 2475


def test_schema_bounds_the_list_length_and_the_body_key(module) -> None:
    record = {
        "sched_dep_time": 900,
        "sched_arr_time": 1200,
        "carrier": "AA",
        "origin": "JFK",
        "dest": "LAX",
        "distance": 2475,
    }
    with pytest.raises(ValidationError, match="at least 1"):
        flights_of(module, [])
    with pytest.raises(ValidationError, match=f"at most {module.ARGS.max_records}"):
        flights_of(module, [record] * (module.ARGS.max_records + 1))
    with pytest.raises(ValidationError, match="records"):  # another task's body key
        module.PredictRequest.model_validate({"records": [record]})


def test_request_schema_is_the_tasks_fields_of_training(module) -> None:
    """Generated from the task: the raw fields the features read, weather optional."""
    record = module.SCHEMA.record
    assert tuple(record.model_fields) == (*RECORD_FIELDS, *WEATHER_FIELDS)
    assert [n for n, f in record.model_fields.items() if not f.is_required()] == list(
        WEATHER_FIELDS
    )
    schema = module.PredictRequest.model_json_schema()
    assert list(schema["properties"]) == ["flights"]
    fields = schema["$defs"]["Record"]["properties"]
    assert (
        fields["sched_dep_time"]["maximum"] == 2359
        and fields["sched_dep_time"]["type"] == "integer"
    )
    outputs = module.PredictResponse.model_json_schema()["$defs"]["Prediction"]["properties"]
    assert {"delay_probability", "delayed", "unknown_inputs"} == set(outputs)


def test_tampered_model_file_stops_the_service(packaged, module) -> None:
    import bentoml

    _, _, _, tag, _ = packaged
    onnx = Path(bentoml.models.get(tag).path) / ONNX_FILE
    original = onnx.read_bytes()
    try:
        onnx.write_bytes(original + b"\0")
        with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx"):
            Service(module)
    finally:
        onnx.write_bytes(original)


def test_serving_imports_no_training_libraries(module) -> None:
    code = (
        "import sys, maas.serving.service; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'mlflow', 'prefect', 'great_expectations', 'dvc', 'pandas', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bearer_auth_guards_the_api_routes_only() -> None:
    from maas.serving.guard import ApiGuard

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = ApiGuard(app, token="s3cret")

    def call(path: str, authorization: bytes | None = None, guard=guarded, **extra) -> int:
        headers = [(b"authorization", authorization)] if authorization is not None else []
        headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "path": path, "headers": headers, "method": "POST"}
        asyncio.run(guard(scope, None, send))
        return int(sent[0]["status"])

    assert call("/predict") == 401
    assert call("/predict", b"Bearer wrong") == 401
    assert call("/metadata", b"bearer s3cret") == 401  # exact scheme and token
    assert call("/predict", b"Bearer s3cret") == 200
    assert call("/metadata/", b"Bearer s3cret") == 200
    for open_path in ("/readyz", "/livez", "/metrics"):
        assert call(open_path) == 200
    open_guard = ApiGuard(app)  # no token configured: no auth
    assert call("/predict", guard=open_guard) == 200
    assert call("/predict", guard=open_guard, content_type=b"multipart/form-data") == 415


def test_bodies_over_the_limit_get_413_declared_or_chunked() -> None:
    from maas.serving.guard import ApiGuard

    async def app(scope, receive, send) -> None:  # reads the whole body, like BentoML
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RuntimeError("client went away")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ApiGuard(app, max_body=100)

    def call(headers: list, chunks: list[bytes]) -> list[int]:
        sent: list[dict] = []
        queue = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive() -> dict:
            return queue.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/predict", "headers": headers, "method": "POST"}
        asyncio.run(guard(scope, receive, send))
        return [m["status"] for m in sent if m["type"] == "http.response.start"]

    assert call([(b"content-length", b"50")], [b"x" * 50]) == [200]
    assert call([(b"content-length", b"101")], [b"x" * 101]) == [413]
    assert call([(b"content-length", b"-1")], [b""]) == [413]
    assert call([], [b"x" * 60, b"x" * 30]) == [200]  # chunked, under the limit
    assert call([], [b"x" * 60, b"x" * 60, b"x" * 60]) == [413]  # cut off; app's answer dropped


def test_fast_path_answers_like_the_api_and_hands_everything_else_to_bentoml(
    packaged, module
) -> None:
    """A valid body is answered by `fast_predict` with exactly the API's response; a body it
    does not accept reaches BentoML's handler unchanged (so its errors stay BentoML's)."""
    from maas.serving.guard import ApiGuard

    fast_predict = module.fast_predict
    *_, records = packaged
    rows = records_of(records.head(20))
    seen: list[bytes] = []

    async def bentoml_app(scope, receive, send) -> None:  # stands in for BentoML's handler
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bentoml"})

    guard = ApiGuard(bentoml_app, fast=fast_predict)

    def call(body: bytes, content_type: bytes = b"application/json") -> tuple[int, bytes]:
        sent: list[dict] = []
        queue = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return queue.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type)]
        scope = {"type": "http", "path": "/predict", "headers": headers, "method": "POST"}
        asyncio.run(guard(scope, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    body = json.dumps({"flights": rows}).encode()
    module.LIVE.clear()
    assert call(body) == (400, b"bentoml") and seen == [body]  # not loaded yet: BentoML's
    service = Service(module)  # loads, warms up, goes live
    status, answer = call(body)
    assert status == 200 and len(seen) == 1  # answered without BentoML's handler
    assert json.loads(answer) == json.loads(json.dumps(predict(service, rows)))
    bad_month = json.dumps({"flights": [{**rows[0], "sched_dep_time": 2400}]}).encode()
    unknown_key = json.dumps({"flights": rows, "debug": True}).encode()
    truncated = body[:-5]
    for refused in (bad_month, unknown_key, truncated):
        assert call(refused) == (400, b"bentoml") and seen[-1] == refused
    assert call(body, b"text/plain") == (400, b"bentoml")  # not declared JSON: BentoML decides


def test_the_answer_names_the_inputs_the_model_has_not_seen(packaged, module) -> None:
    """A new carrier or airport is scored with the unknown bucket: the response says which
    fields of which record that was, so a client can tell a confident answer from a guess."""
    *_, records = packaged
    service = Service(module)
    base = {k: v for k, v in records_of(records.head(1))[0].items() if k in RECORD_FIELDS}
    body = predict(service, [base, {**base, "carrier": "ZZ", "dest": "XYZ"}])
    first, second = body["predictions"]
    assert first["unknown_inputs"] == []
    assert second["unknown_inputs"] == ["carrier", "dest"]


def test_the_openapi_document_names_the_gateways_prefix_when_behind_it() -> None:
    """Behind the gateway, /models/<name>/docs.json says where its paths are served (OpenAPI
    `servers`); straight to the container, or with a prefix that is not the gateway's, not."""
    from maas.serving.guard import ApiGuard

    async def app(scope, receive, send) -> None:  # BentoML's document, reduced
        body = json.dumps({"openapi": "3.0.2", "paths": {"/predict": {}}}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def document(prefix: bytes | None) -> dict:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"x-forwarded-prefix", prefix)] if prefix is not None else []
        scope = {"type": "http", "path": "/docs.json", "headers": headers, "method": "GET"}
        asyncio.run(ApiGuard(app)(scope, None, send))
        return dict(json.loads(sent[1]["body"]))

    assert "servers" not in document(None)
    assert document(b"/models/hotel-rates")["servers"][0]["url"] == "/models/hotel-rates"
    assert document(b"/models/a/versions/3")["servers"][0]["url"] == "/models/a/versions/3"
    assert "servers" not in document(b"https://elsewhere.example/")
    assert document(None)["openapi"] == "3.1.0"
