"""A deploy override, signed: a person who holds the gate key approves deploying a version that
failed a check (the gate, data validation, infra-validation), with a reason, on the record.

A registry writer can set tags, so the `deploy_override` tag alone proves nothing. `maas
approve` signs (HMAC-SHA256, the gate key: promotion.verdict_key_file / $MAAS_GATE_KEY) the
model, the version, its artifact and serving-code digests, the reason and the signer; the
controller accepts an override only when that signature verifies. An approval never covers a
version whose own verdict does not verify (unsigned, or digests changed since registration):
the version must still be exactly what the pipeline registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maas.tracking.keyring import Key, sign_json, verifies
from maas.tracking.serving_code import DIGEST_TAG
from maas.tracking.verdict import DIGEST_PREFIX

OVERRIDE_TAG = "deploy_override"  # its value: the reason
OVERRIDE_SIGNATURE_TAG = "deploy_override_signature"
OVERRIDE_BY_TAG = "deploy_override_by"  # user@host of the key holder who approved


def _body(
    model: str, version: str, tags: Mapping[str, str], reason: str, by: str
) -> dict[str, Any]:
    digests = {k: v for k, v in tags.items() if k.startswith(DIGEST_PREFIX)}
    body = {
        "purpose": "deploy_override",  # never valid as another kind of signature
        "model": model,
        "version": str(version),
        DIGEST_TAG: tags.get(DIGEST_TAG),
        "digests": digests,
        "reason": reason,
        "by": by,
    }
    return body


def sign_override(
    key: Key, model: str, version: str, tags: Mapping[str, str], reason: str, by: str
) -> str:
    return sign_json(key, _body(model, version, tags, reason, by))


def override_tags(
    key: Key, model: str, version: str, tags: Mapping[str, str], reason: str, by: str
) -> dict[str, str]:
    """The tags that record an approval of `version` (its current `tags`) by `by`."""
    return {
        OVERRIDE_TAG: reason,
        OVERRIDE_SIGNATURE_TAG: sign_override(key, model, version, tags, reason, by),
        OVERRIDE_BY_TAG: by,
    }


def override_problem(key: Key, model: str, version: str, tags: Mapping[str, str]) -> str | None:
    """Why the version's deploy override cannot be trusted, or None when a key holder signed
    it for exactly these digests, this reason and this signer."""
    reason = tags.get(OVERRIDE_TAG)
    if not reason:
        return "it has no deploy override"
    signature = tags.get(OVERRIDE_SIGNATURE_TAG)
    if not signature:
        return f"its {OVERRIDE_TAG} tag is not signed (set in the registry, not by `maas approve`)"
    body = _body(model, version, tags, reason, tags.get(OVERRIDE_BY_TAG, ""))
    if not verifies(key, body, signature):
        return (
            f"its {OVERRIDE_TAG} signature does not match (reason, signer or digests changed "
            "after `maas approve`, or signed with another key)"
        )
    return None
