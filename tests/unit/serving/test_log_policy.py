"""What the prediction log keeps of a request (`LogPolicy`), from the records the service
validated (`logged`) or from the body as sent (`filtered`): the declared fields and the task's
keys, redacted, never another field a client sends."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from maas.serving.log_policy import LogPolicy
from maas.serving.request import MAX_TEXT, FieldSpec, RequestSpec
from maas.serving.schema import build_schema

SPEC = RequestSpec(
    "flights",
    (
        FieldSpec("carrier", "str"),
        FieldSpec("dest", "str"),
        FieldSpec("distance", "int", 0, 5000),
        FieldSpec("temp", "float", optional=True),
        FieldSpec("wind", "float", optional=True),
    ),
    outputs={"probability": "p", "decision": "late"},
)
SCHEMA = build_schema(SPEC, 100)
SECRET = {"passenger_name": "Ada Lovelace", "card_number": "4111111111111111", "x": {"a": [1]}}


def validated(body: bytes) -> list[BaseModel]:
    """The records the service scores: its request model's, out of `body`."""
    return SCHEMA.records(SCHEMA.request.model_validate_json(body))


def sha(value: Any) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def test_validated_records_are_logged_declared_fields_only_redacted_as_filtered() -> None:
    """No key outside the declared fields: the line is the validated records' fields the client
    sent (an optional field left out stays out, a null stays null), the redactions applied, and
    nothing else of the body; the same line as the body filtered, but for a whole number sent
    as 1400.0 that the service read as the integer it is."""
    rows = [
        {"carrier": "UA", "dest": "LAX", "distance": 1400.0, "wind": None, **SECRET},
        {"carrier": "AA", "dest": "BOS", "distance": 187, "temp": 3.5, "wind": 12},
    ]
    body = json.dumps({"flights": rows}, indent=1).encode()
    policy = LogPolicy("flights", frozenset(SPEC.names), redact={"dest": "drop", "carrier": "hash"})
    line = policy.logged(validated(body), body)
    assert b"\n" not in line and b"Lovelace" not in line and b"4111" not in line
    assert b"LAX" not in line and b"1400.0" not in line
    expected = [
        {"carrier": sha("UA"), "distance": 1400, "wind": None},
        {"carrier": sha("AA"), "distance": 187, "temp": 3.5, "wind": 12.0},
    ]
    assert json.loads(line) == {"flights": expected}
    assert json.loads(policy.filtered(body)) == json.loads(line)
    plain = LogPolicy("flights", frozenset(SPEC.names))  # no redaction: one serializer call
    assert json.loads(plain.logged(validated(body), body))["flights"][1] == {
        "carrier": "AA",
        "dest": "BOS",
        "distance": 187,
        "temp": 3.5,
        "wind": 12.0,
    }


def test_the_body_is_not_read_again_when_every_key_is_a_declared_field() -> None:
    """The second parse of the body was the log's cost (issue 33): with the keys among the
    declared fields, the line comes from the validated records alone."""
    body = json.dumps({"flights": [{"carrier": "UA", "dest": "LAX", "distance": 9}]}).encode()
    policy = LogPolicy("flights", frozenset(SPEC.names), frozenset({"carrier"}))
    line = policy.logged(validated(body), b"the body is not read: not even JSON")
    assert json.loads(line) == {"flights": [{"carrier": "UA", "dest": "LAX", "distance": 9}]}


def test_keys_no_field_holds_come_from_the_body_sanitized_and_redacted() -> None:
    """A key column the request does not declare (a flight's number) is only in the body: read
    from it, a hostile value sanitized (an object, a non-finite number, an integer past int64:
    null; a long string cut), a hashed key hashed, a dropped one dropped."""
    hostile: list[Any] = [
        1545,
        {"a": 1},
        "INF",
        10**30,
        -(2**63),
        2**63,
        "f" * (MAX_TEXT + 50),
        True,
        1.5,
    ]
    rows = [{"carrier": "UA", "dest": "LAX", "distance": 9, "flight": v} for v in hostile]
    rows.append({"carrier": "UA", "dest": "LAX", "distance": 9, **SECRET})  # no key: none logged
    body = json.dumps({"flights": rows}).encode().replace(b'"INF"', b"1e999")
    keys = frozenset({"flight", "day", "carrier"})
    policy = LogPolicy("flights", frozenset(SPEC.names), keys, redact={"dest": "drop"})
    logged = json.loads(policy.logged(validated(body), body))["flights"]
    flights = [None, None, None, -(2**63), None, "f" * MAX_TEXT, True, 1.5]
    assert [row.get("flight", "absent") for row in logged] == [1545, *flights, "absent"]
    assert all(set(row) <= {"carrier", "distance", "flight"} for row in logged)
    hashed = LogPolicy("flights", frozenset(SPEC.names), keys, redact={"flight": "hash"})
    first = json.loads(hashed.logged(validated(body), body))["flights"][0]
    assert first == {"carrier": "UA", "dest": "LAX", "distance": 9, "flight": sha(1545)}
    dropped = LogPolicy("flights", frozenset(SPEC.names), keys, redact={"flight": "drop"})
    assert all("flight" not in row for row in json.loads(dropped.filtered(body))["flights"])
    # every key a field or dropped: the body is not read (not even JSON)
    only = LogPolicy("flights", frozenset(SPEC.names), frozenset({"flight"}), {"flight": "drop"})
    first = json.loads(only.logged(validated(body), b"{"))["flights"][0]
    assert first == {"carrier": "UA", "dest": "LAX", "distance": 9}


def test_a_body_no_one_validated_still_keeps_only_records_and_json() -> None:
    """`filtered` (a tool's own log): a record that is no object is `{}`, a top-level key other
    than the body's is gone, a non-finite number in a declared field is null (still JSON), and
    a body without the records' list is a ValueError."""
    import pytest

    policy = LogPolicy("flights", frozenset({"carrier", "temp"}))
    body = b'{"flights": [{"carrier": "UA", "temp": 1e999, "name": "Ada"}, 7], "card": "4111"}'
    line = policy.filtered(body)
    assert json.loads(line) == {"flights": [{"carrier": "UA", "temp": None}, {}]}
    for wrong in (b'{"flight": []}', b'{"flights": {}}', b"[1]", b"not json"):
        with pytest.raises(ValueError, match="no 'flights' list"):
            policy.filtered(wrong)
