"""What of a request the prediction log keeps (`LogPolicy`): the request's declared fields and
the task's key and time columns of each record, redacted as the task file says; nothing else a
client sends. The deploy target names the keys and redactions (`monitoring` in params,
`maas.serving.prediction_log.environment`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic_core

from maas.serving.request import MAX_TEXT

REDACTIONS = ("drop", "hash")


@dataclass(frozen=True)
class LogPolicy:
    """What of a request is logged: the records under `body_key`, each with only `fields` (the
    request's declared fields, which the service validated before logging) and `keys` (the
    task's key and time columns, which it did not: a value that is not a JSON scalar or an
    int64 is logged as null, a string cut at MAX_TEXT characters). A field in `redact` is
    dropped or (`hash`) logged as `sha256:<hex>` of its value, a pseudonym that still joins
    and counts, not a secret: a value that can be guessed (a card number) can be found from it,
    so drop those. pydantic-core parses and writes the JSON (3x the standard library's speed:
    this runs on every request)."""

    body_key: str
    fields: frozenset[str]
    keys: frozenset[str] = frozenset()
    redact: Mapping[str, str] = field(default_factory=dict)
    allowed: frozenset[str] = field(init=False)  # fields | keys
    unchecked: frozenset[str] = field(init=False)  # keys the service did not validate

    def __post_init__(self) -> None:
        wrong = {name: how for name, how in self.redact.items() if how not in REDACTIONS}
        if wrong:
            raise ValueError(f"redactions must be one of {REDACTIONS}: {wrong}")
        object.__setattr__(self, "allowed", self.fields | self.keys)
        object.__setattr__(self, "unchecked", self.keys - self.fields)

    def filtered(self, request: bytes) -> bytes:
        """The request as logged, one line of JSON; ValueError when it holds no records."""
        document = pydantic_core.from_json(request)
        records = document.get(self.body_key) if isinstance(document, dict) else None
        if not isinstance(records, list):
            raise ValueError(f"no {self.body_key!r} list in the request")
        kept = {self.body_key: [self._record(record) for record in records]}
        return pydantic_core.to_json(kept)  # non-finite numbers become null

    def _record(self, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            return {}
        allowed = self.allowed
        if not record.keys() <= allowed:  # a client's other fields: never written
            record = {name: value for name, value in record.items() if name in allowed}
        for name in self.unchecked & record.keys():
            value = record[name]
            if isinstance(value, str):
                record[name] = value[:MAX_TEXT]
            elif not _plain_scalar(value):
                record[name] = None
        for name, how in self.redact.items():
            if how == "drop":
                record.pop(name, None)
            elif record.get(name) is not None:
                digest = hashlib.sha256(str(record[name]).encode()).hexdigest()
                record[name] = f"sha256:{digest}"
        return record


def _plain_scalar(value: Any) -> bool:
    """null, a boolean, a finite float, an int64: what a key column may hold."""
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool)
