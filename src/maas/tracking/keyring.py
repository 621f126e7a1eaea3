"""The gate key, as a keyring: the current key signs, older keys still verify until retired.

Everything maas concludes about a version is signed with it (gate verdicts, approvals,
packaging results: `sign_json`) and checked with it (`verifies`). The key lives in
`promotion.verdict_key_file` (mode 0600; one key per line, the first signs, `#` comments) or
in `$MAAS_GATE_KEY` (one key, or several separated by commas, the first signs). Rotation
(`maas key rotate`) puts a new key first and keeps the old ones verifying, so rollback targets
signed before the rotation still deploy; `maas key retire` drops an old key once no version
you may serve again needs it. Keys never leave the host: `maas key list` shows fingerprints.

Only the register stage makes a key where there is none (the first `maas run` of a project),
and says so loudly; a host that only verifies (the controller, packaging, the monitor) must
be given the team's key and stops with a clear error without one, instead of inventing a key
that refuses every version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.errors import VerdictKeyError
from maas.files import read_or_create_secret

log = logging.getLogger(__name__)

KEY_ENV = "MAAS_GATE_KEY"


@dataclass(frozen=True)
class Keyring:
    current: str
    older: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.current, *self.older)


Key = str | Keyring  # a single key verifies only what it signed


def fingerprint(key: str) -> str:
    """A key's public name: the first 12 hex digits of its SHA-256 (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _ring(key: Key) -> Keyring:
    return key if isinstance(key, Keyring) else Keyring(key)


def _mac(key: str, body: Mapping[str, Any]) -> str:
    message = json.dumps(body, sort_keys=True).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign_json(key: Key, body: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of `body`'s canonical JSON with the current key: the one way maas
    signs what it concluded (each body names its own purpose or shape)."""
    return _mac(_ring(key).current, body)


def verifies(key: Key, body: Mapping[str, Any], signature: str) -> bool:
    """Whether `signature` is `body`'s, signed with any key of the ring (constant time each)."""
    return any(
        hmac.compare_digest(signature.encode(), _mac(one, body).encode()) for one in _ring(key).keys
    )


def _parse(text: str, where: str) -> Keyring:
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    keys = [key.strip() for line in lines for key in line.split(",") if key.strip()]
    if not keys:
        raise VerdictKeyError(f"{where} holds no key: delete it (a new key is made) or fill it")
    return Keyring(keys[0], tuple(keys[1:]))


def load_key(path: Path, create: bool = False) -> Keyring:
    """The keyring from $MAAS_GATE_KEY, else from `path`. Without either: a new key written
    with mode 0600 when `create` (the register stage, loudly), else VerdictKeyError."""
    if KEY_ENV in os.environ:
        if not os.environ[KEY_ENV].strip(" ,"):
            raise VerdictKeyError(f"${KEY_ENV} is blank: unset it or set the team's key")
        return _parse(os.environ[KEY_ENV], f"${KEY_ENV}")
    if not path.is_file():
        if not create:
            raise VerdictKeyError(
                f"no gate key on this host: {path} is missing and ${KEY_ENV} is unset. The "
                "first `maas run` of a project makes one; a host that deploys, packages or "
                f"monitors needs that key (copy the file with mode 0600, or set ${KEY_ENV})"
            )
        read_or_create_secret(path)
        log.warning(
            "made a new gate key %s (fingerprint %s): versions signed with any other key will "
            "be refused here; on a team, use the team's key instead (docs/security.md)",
            path,
            fingerprint(path.read_text().strip()),
        )
    return _parse(path.read_text(), str(path))


def _write(path: Path, ring: Keyring) -> None:
    if KEY_ENV in os.environ:
        raise VerdictKeyError(
            f"${KEY_ENV} is set: rotate the key where it is kept (the first of its "
            f"comma-separated keys signs), not in {path}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# maas gate keys: the first signs, the others verify until retired", *ring.keys]
    partial = path.with_name(f".{path.name}.{os.getpid()}.new")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def rotate(path: Path) -> Keyring:
    """A new current key; the previous ones keep verifying."""
    ring = load_key(path)
    rotated = Keyring(secrets.token_urlsafe(32), ring.keys)
    _write(path, rotated)
    return rotated


def retire(path: Path, name: str) -> Keyring:
    """The ring without the older key whose fingerprint is `name` (the current key is never
    retired: rotate first)."""
    ring = load_key(path)
    if fingerprint(ring.current) == name:
        raise VerdictKeyError(f"{name} is the current key: `maas key rotate` first")
    kept = tuple(key for key in ring.older if fingerprint(key) != name)
    if len(kept) == len(ring.older):
        known = ", ".join(fingerprint(key) for key in ring.keys)
        raise VerdictKeyError(f"no key with fingerprint {name} (the ring holds {known})")
    retired = Keyring(ring.current, kept)
    _write(path, retired)
    return retired
