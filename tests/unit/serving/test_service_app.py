"""The service as a container runs it, in process: BentoML's ASGI app with the guard, the fast
path and the prediction log, sent HTTP requests through both paths (a declared JSON body the
fast path answers; a chunked or `text/plain` body BentoML's own handler answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from maas.monitor.predictions import LogColumns, read_predictions
from maas.serving.prediction_log import DIR_ENV
from tests.unit.serving.apps import asgi_app, load_service, package_flights, records_of

JSON = {"content-type": "application/json"}
PLAIN = {"content-type": "text/plain"}
INT64 = 2**63


@pytest.fixture(scope="module")
def open_app(tmp_path_factory: pytest.TempPathFactory, params: Any) -> tuple[Any, list[dict]]:
    """The service of a version whose request has an integer field without bounds (a task may
    declare none: `distance` here), and a record of its own."""

    def unbounded(request: dict[str, Any]) -> None:
        for field in request["fields"]:
            if field["name"] == "distance":
                field["min"] = field["max"] = None

    root = tmp_path_factory.mktemp("open")
    *_, tag, records = package_flights(root, params, "open-ints", unbounded)
    return load_service(tag, "maas_open_ints_service"), records_of(records.head(1))


def post(client: TestClient, rows: list[dict], headers: dict[str, str] = JSON) -> Any:
    return client.post("/predict", content=json.dumps({"flights": rows}), headers=headers)


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), INT64, -INT64 - 1, int(1.5e308)],
    ids=["1e400", "-1e400", "2**63", "-2**63-1", "int(1.5e308)"],
)
def test_a_huge_integer_gets_a_400_naming_the_field_on_both_paths(open_app, value: int) -> None:
    """10**400 passed an integer field without bounds, then overflowed converting to float: a
    500. Any integer the schema lets through is now one a float holds (int64)."""
    service, (row,) = open_app
    with TestClient(asgi_app(service)) as client:
        for headers in (JSON, PLAIN):
            answer = post(client, [{**row, "distance": value}], headers)
            assert answer.status_code == 400, answer.text
            assert answer.json()["detail"][0]["loc"] == ["flights", 0, "distance"]
        assert post(client, [{**row, "distance": 2**62}]).status_code == 200  # scored


def test_a_number_that_overflows_a_float_is_no_number(open_app) -> None:
    """1e400 in JSON parses as infinity: neither an integer nor a finite float."""
    service, (row,) = open_app
    with TestClient(asgi_app(service)) as client:
        for field in ("distance", "temp"):
            body = json.dumps({"flights": [{**row, field: 12345}]})
            body = body.replace(f'"{field}": 12345', f'"{field}": 1e400')
            assert "1e400" in body
            for headers in (JSON, PLAIN):
                answer = client.post("/predict", content=body, headers=headers)
                assert answer.status_code == 400 and field in answer.text


def test_schemathesis_finds_no_server_error_and_the_schema_tells_the_truth(open_app) -> None:
    """schemathesis's checks on the app's own OpenAPI document: integers at and past every
    bound, then generated records (valid ones accepted, invalid ones refused, no 5xx)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    service, (row,) = open_app
    schema = schemathesis.openapi.from_asgi("/docs.json", asgi_app(service))
    operation = schema["/predict"]["POST"]
    extremes = [10**400, -(10**400), INT64, -INT64 - 1, INT64 - 1, -INT64, 2**1024, 0]
    for field in ("distance", "sched_dep_time", "sched_arr_time"):
        for value in extremes:
            body = {"flights": [{**row, field: value}]}
            operation.Case(body=body, media_type="application/json").call_and_validate()

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate()

        fuzz()


@pytest.mark.parametrize(
    ("field", "value"), [("sched_dep_time", 1299), ("sched_arr_time", 960), ("sched_dep_time", 60)]
)
def test_an_impossible_clock_time_gets_a_400_naming_the_field(
    packaged, module, field: str, value: int
) -> None:
    """Training blocks an hhmm value whose minutes are over 59; the service scored 1299 as
    13:39. A field the task's derived features read as hhmm now follows the same rule, and
    the OpenAPI document says so (schemathesis's valid records are accepted)."""
    *_, records = packaged
    row = records_of(records.head(1))[0]
    with TestClient(asgi_app(module)) as client:
        for headers in (JSON, PLAIN):
            answer = post(client, [{**row, field: value}], headers)
            assert answer.status_code == 400, answer.text
            assert answer.json()["detail"][0]["loc"] == ["flights", 0, field]
        for fine in (0, 59, 1259, 2359):
            assert post(client, [{**row, field: fine}]).status_code == 200
    clock = module.PredictRequest.model_json_schema()["$defs"]["Record"]["properties"][field]
    assert {"minimum": 1200, "maximum": 1259} in clock["anyOf"]
    assert (clock["minimum"], clock["maximum"]) == (0, 2359)


def test_both_paths_log_the_same_line_with_the_key_fields_and_nothing_else(
    packaged, module, params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked or `text/plain` body (BentoML's own handler) was logged from the validated
    records, which drop the fields the model does not read: a flight's date and number, the
    keys that join late labels. Every path logs the same records: the request's declared
    fields and the task's keys, nothing else a client sends (issue 27 item 8, the attack: a
    `passenger_name` and a `card_number` were logged verbatim, in a 0644 file); a field the
    task redacts with `hash` is logged as its sha256."""
    import hashlib
    import stat

    from maas.serving.prediction_log import KEYS_ENV, REDACT_ENV

    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setenv(KEYS_ENV, ",".join(params.logged_keys))
    monkeypatch.setenv(REDACT_ENV, json.dumps({"flight": "hash", "origin": "drop"}))
    module.LIVE.clear()  # the service is created again, reading the log's settings
    *_, records = packaged
    keys = {"year": 2013, "month": 12, "day": 3}
    secret = {"passenger_name": "Ada Lovelace", "card_number": "4111111111111111"}
    rows = [
        {**row, **keys, **secret, "flight": 1545 + i, "sched_dep_time": 900.0}  # 900.0: an int
        for i, row in enumerate(records_of(records.head(3)))
    ]
    body = json.dumps({"flights": rows}, indent=1).encode()  # newlines too, as a client may
    with TestClient(asgi_app(module)) as client:
        fast = client.post("/predict", content=body, headers=JSON)
        plain = client.post("/predict", content=body, headers=PLAIN)
        chunked = client.post("/predict", content=iter([body[:100], body[100:]]), headers=JSON)
        log = module.LIVE["service"].prediction_log
    assert fast.status_code == plain.status_code == chunked.status_code == 200
    log.flush()
    text = log.path.read_bytes()
    assert b"Lovelace" not in text and b"4111" not in text and b"passenger" not in text
    assert stat.S_IMODE(log.path.stat().st_mode) & 0o037 == 0  # 0640 or stricter
    lines = text.splitlines()
    assert len(lines) == 3
    # the same line but for its time and request id
    assert len({line.split(b'"model":', 1)[1] for line in lines}) == 1
    entry = json.loads(lines[1])
    declared = set(module.SCHEMA.spec.names) | set(params.logged_keys)
    expected = [{k: v for k, v in row.items() if k in declared and k != "origin"} for row in rows]
    for row in expected:
        row["flight"] = "sha256:" + hashlib.sha256(str(row["flight"]).encode()).hexdigest()
    assert entry["request"] == {"flights": expected} and entry["response"] == fast.json()
    logged = read_predictions(tmp_path, "flights", LogColumns.of(params)).frame
    assert len(logged) == 9 and {*keys, "flight"} <= set(logged.columns)
    assert "origin" not in logged.columns


def test_without_undeclared_keys_every_path_logs_the_validated_records(
    packaged, module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key column beyond the declared fields (`bentoml serve` with a log folder, or a task
    whose keys the request declares): every path logs the records the service validated,
    without reading the body again (issue 33), so the line is the same on each path, holds a
    whole number sent as 900.0 as the integer the service read, and nothing undeclared."""
    import hashlib

    from maas.serving.prediction_log import KEYS_ENV, REDACT_ENV

    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv(KEYS_ENV, raising=False)
    monkeypatch.setenv(REDACT_ENV, json.dumps({"carrier": "hash", "origin": "drop"}))
    module.LIVE.clear()  # the service is created again, reading the log's settings
    *_, records = packaged
    secret = {"passenger_name": "Ada Lovelace", "card_number": "4111111111111111", "flight": 1}
    rows = [{**row, **secret, "sched_dep_time": 900.0} for row in records_of(records.head(2))]
    body = json.dumps({"flights": rows}, indent=1).encode()
    with TestClient(asgi_app(module)) as client:
        fast = client.post("/predict", content=body, headers=JSON)
        plain = client.post("/predict", content=body, headers=PLAIN)
        chunked = client.post("/predict", content=iter([body[:100], body[100:]]), headers=JSON)
        log = module.LIVE["service"].prediction_log
    assert fast.status_code == plain.status_code == chunked.status_code == 200
    assert not log.policy.unchecked
    log.flush()
    lines = log.path.read_bytes().splitlines()
    assert len(lines) == 3 and log.lost == 0
    assert len({line.split(b'"model":', 1)[1] for line in lines}) == 1
    assert b"Lovelace" not in lines[0] and b"4111" not in lines[0] and b"900.0" not in lines[0]
    declared = set(module.SCHEMA.spec.names) - {"origin"}
    expected = [{k: v for k, v in row.items() if k in declared} for row in rows]
    for row in expected:
        row["carrier"] = "sha256:" + hashlib.sha256(row["carrier"].encode()).hexdigest()
    assert json.loads(lines[2])["request"] == {"flights": expected}
