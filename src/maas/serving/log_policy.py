"""What of a request the prediction log keeps (`LogPolicy`): the request's declared fields and
the task's key and time columns of each record, redacted as the task file says; nothing else a
client sends. The deploy target names the keys and redactions (`monitoring` in params,
`maas.serving.prediction_log.environment`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import BaseModel, TypeAdapter
from pydantic_core import SchemaValidator, core_schema

from maas.serving.request import MAX_TEXT

REDACTIONS = ("drop", "hash")
INT64 = (-(2**63), 2**63)  # [low, high): the integers a key column may hold


@dataclass(frozen=True)
class LogPolicy:
    """What of a request is logged: the records under `body_key`, each with only `fields` (the
    request's declared fields, which the service validated before logging) and `keys` (the
    task's key and time columns, which it did not: a value that is not a JSON scalar or an
    int64 is logged as null, a string cut at MAX_TEXT characters). A field in `redact` is
    dropped or (`hash`) logged as `sha256:<hex>` of its value, a pseudonym that still joins
    and counts, not a secret: a value that can be guessed (a card number) can be found from it,
    so drop those.

    This runs on every request, so the work stays in pydantic-core (Rust): `logged` writes the
    records the service validated without parsing the body again, unless the keys hold a column
    the records do not (then only the body has it: `filtered`, one pass that keeps the allowed
    fields and sanitizes the keys)."""

    body_key: str
    fields: frozenset[str]
    keys: frozenset[str] = frozenset()
    redact: Mapping[str, str] = field(default_factory=dict)
    allowed: frozenset[str] = field(init=False)  # fields | keys
    unchecked: frozenset[str] = field(init=False)  # keys the service did not validate
    _hashed: tuple[str, ...] = field(init=False, repr=False)
    _read_body: bool = field(init=False, repr=False)  # a key is logged that is no field
    _picker: SchemaValidator = field(init=False, repr=False, compare=False)
    _exclude: dict[str, set[str]] | None = field(init=False, repr=False, compare=False)
    _head: bytes = field(init=False, repr=False)
    _dumpers: dict[type, TypeAdapter[list[BaseModel]]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        wrong = {name: how for name, how in self.redact.items() if how not in REDACTIONS}
        if wrong:
            raise ValueError(f"redactions must be one of {REDACTIONS}: {wrong}")
        dropped = {name for name, how in self.redact.items() if how == "drop"}
        hashed = tuple(sorted(name for name, how in self.redact.items() if how == "hash"))
        unchecked = self.keys - self.fields
        setattr_ = object.__setattr__
        setattr_(self, "allowed", self.fields | self.keys)
        setattr_(self, "unchecked", unchecked)
        setattr_(self, "_hashed", hashed)
        setattr_(self, "_read_body", bool(unchecked - dropped))
        setattr_(
            self, "_picker", _picker(self.body_key, self.fields - dropped, unchecked - dropped)
        )
        setattr_(self, "_exclude", {"__all__": dropped} if dropped else None)
        setattr_(self, "_head", b"{" + json.dumps(self.body_key).encode() + b":")

    def logged(self, records: list[BaseModel], request: bytes) -> bytes:
        """The request as logged, one line of JSON, from `records`: what the service validated
        out of `request` (its body as sent), in order. The body is read again only for key
        columns that are no declared field (and not dropped)."""
        if self._read_body or not records:
            return self.filtered(request)
        dumper = self._dumpers.get(type(records[0])) or self._dumper(type(records[0]))
        # exclude_unset: a field is logged when the client sent it, as in `filtered`
        if not self._hashed:
            rows = dumper.dump_json(records, exclude_unset=True, exclude=self._exclude)
            return b"".join((self._head, rows, b"}"))
        kept = dumper.dump_python(records, exclude_unset=True, exclude=self._exclude)
        return pydantic_core.to_json({self.body_key: self._hash(kept)}, inf_nan_mode="null")

    def filtered(self, request: bytes) -> bytes:
        """The request as logged, one line of JSON, from its body as sent: of each record, the
        allowed fields, the keys sanitized (a record that is no object: `{}`); ValueError when
        it holds no records."""
        try:
            document = self._picker.validate_json(request)
        except pydantic_core.ValidationError:
            raise ValueError(f"no {self.body_key!r} list in the request") from None
        records: list[dict[str, Any]] = document[self.body_key]
        if self._hashed:
            records = self._hash(records)
        # a non-finite number (a declared field of a body no one validated): null, still JSON
        return pydantic_core.to_json({self.body_key: records}, inf_nan_mode="null")

    def _dumper(self, kind: type[BaseModel]) -> TypeAdapter[list[BaseModel]]:
        """The serializer of a list of `kind` records, made once (the service has one kind)."""
        dumper: TypeAdapter[list[BaseModel]] = TypeAdapter(list[kind])  # type: ignore[valid-type]
        return self._dumpers.setdefault(kind, dumper)

    def _hash(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The `hash` redactions, in place."""
        for record in records:
            for name in self._hashed:
                value = record.get(name)
                if value is not None:
                    record[name] = f"sha256:{hashlib.sha256(str(value).encode()).hexdigest()}"
        return records


def _picker(body_key: str, fields: frozenset[str], keys: frozenset[str]) -> SchemaValidator:
    """Parses a request body into its records' `fields` as sent and `keys` sanitized, every
    other field left in the parser (never a Python object); a record that is no object is
    `{}`. Fields and keys a record lacks stay absent."""
    kept = {
        name: core_schema.typed_dict_field(core_schema.any_schema(), required=False)
        for name in fields
    }
    kept |= {name: core_schema.typed_dict_field(_key_value(), required=False) for name in keys}
    record = core_schema.union_schema(
        [
            core_schema.typed_dict_schema(kept, extra_behavior="ignore"),
            core_schema.no_info_plain_validator_function(_no_record),
        ],
        mode="left_to_right",
    )
    records = core_schema.typed_dict_field(core_schema.list_schema(record))
    return SchemaValidator(
        core_schema.typed_dict_schema({body_key: records}, extra_behavior="ignore")
    )


def _key_value() -> core_schema.CoreSchema:
    """A key column's value as logged: null, a boolean, an int64, a finite float or a string
    of at most MAX_TEXT characters as sent; a longer string cut; anything else null. The
    Python functions run only for the last two, which a well-behaved client never sends."""
    return core_schema.union_schema(
        [
            core_schema.none_schema(),
            core_schema.bool_schema(strict=True),
            core_schema.int_schema(strict=True, ge=INT64[0], lt=INT64[1]),
            # any other integer: before the float, which would take it as one
            core_schema.no_info_after_validator_function(
                _null, core_schema.int_schema(strict=True)
            ),
            core_schema.float_schema(strict=True, allow_inf_nan=False),
            core_schema.str_schema(strict=True, max_length=MAX_TEXT),
            core_schema.no_info_plain_validator_function(_cut_or_null),
        ],
        mode="left_to_right",
    )


def _null(_: Any) -> None:
    return None


def _no_record(_: Any) -> dict[str, Any]:
    return {}


def _cut_or_null(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None
