"""The gate key's lifecycle on the command line: `maas key list`, `rotate`, `retire`.

Retiring a key refuses every version whose verdict only that key signed: the command names
them and stops (rollback targets included) unless told `--force`; register such a version
again through the pipeline, or keep the key a while longer (docs/security.md, rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

from maas.audit import AuditTrail, person
from maas.config import Params
from maas.errors import VerdictKeyError
from maas.tracking import keyring
from maas.tracking.keyring import Keyring, fingerprint
from maas.tracking.store import connect
from maas.tracking.verdict import verdict_problem


@dataclass(frozen=True)
class KeyUse:
    fingerprint: str
    current: bool
    versions: tuple[str, ...]  # of this task's model whose verdict this key signed


def key_uses(params: Params) -> list[KeyUse]:
    """Each key of the ring and the versions of the task's model it signed."""
    ring = keyring.load_key(params.promotion.verdict_key_file)
    name = params.registry.model_name
    client = connect(params.registry)
    signed: dict[str, list[str]] = {key: [] for key in ring.keys}
    for found in client.search_model_versions(f"name = '{name}'"):
        version, tags = str(found.version), dict(found.tags)
        for key in ring.keys:
            if verdict_problem(key, name, version, found.run_id, tags) is None:
                signed[key].append(version)
                break
    return [
        KeyUse(fingerprint(key), key == ring.current, tuple(sorted(signed[key], key=int)))
        for key in ring.keys
    ]


def rotate(params: Params) -> Keyring:
    ring = keyring.rotate(params.promotion.verdict_key_file)
    AuditTrail.of(params).record(
        "key_rotated", None, actor=person(), current=fingerprint(ring.current)
    )
    return ring


def retire(params: Params, name: str, force: bool = False) -> Keyring:
    """Drop the older key `name` (a fingerprint) from the ring; refused while versions of the
    task's model verify only with it, unless `force`."""
    needing = next((use.versions for use in key_uses(params) if use.fingerprint == name), ())
    if needing and not force:
        raise VerdictKeyError(
            f"key {name} signed v{', v'.join(needing)} of {params.registry.model_name}: retired, "
            "they could never serve again (no rollback to them). Register them again through "
            "the pipeline, or retire with --force"
        )
    ring = keyring.retire(params.promotion.verdict_key_file, name)
    AuditTrail.of(params).record(
        "key_retired", None, actor=person(), retired=name, refused_now=list(needing)
    )
    return ring
