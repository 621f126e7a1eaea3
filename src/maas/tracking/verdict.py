"""The gate's verdict, signed: what the controller deploys on must be what this project's
pipeline decided, not tags that anyone with write access to the registry can set.

The register stage signs, with a key only the project's processes hold, the model name, the
version number, its run, the gate and validation results and the digests of the artifacts and
the serving code (HMAC-SHA256, tag `gate_signature`). The controller checks the signature
before it deploys: a version whose `gate_passed` was flipped by hand, whose artifacts or code
digests were edited, or that was registered outside the pipeline is refused like a version
that failed the gate. Nothing recorded with a version (its serving code, its artifacts) is
imported or run on a host before its verdict verifies (`require_verdict`). A key holder can
still deploy a version that failed a check on purpose with a signed override
(maas.tracking.approval, `maas approve`); that is the trust boundary docs/security.md describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maas.errors import UntrustedVersionError
from maas.tracking.keyring import KEY_ENV, Key, sign_json, verifies

SIGNATURE_TAG = "gate_signature"
SIGNED_TAGS = ("gate_passed", "gate_promoted", "validation_status", "serving_code_sha256")
DIGEST_PREFIX = "sha256."  # the artifact digests (maas.tracking.registry.SHA_TAG_PREFIX)


def _body(model: str, version: str, run_id: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
    signed = {name: tags.get(name) for name in SIGNED_TAGS}
    digests = {k: v for k, v in tags.items() if k.startswith(DIGEST_PREFIX)}
    return {"model": model, "version": str(version), "run_id": run_id or "", **signed, **digests}


def sign_verdict(
    key: Key, model: str, version: str, run_id: str | None, tags: Mapping[str, str]
) -> str:
    return sign_json(key, _body(model, version, run_id, tags))


def verdict_problem(
    key: Key, model: str, version: str, run_id: str | None, tags: Mapping[str, str]
) -> str | None:
    """Why the version's verdict cannot be trusted, or None when its signature holds."""
    signature = tags.get(SIGNATURE_TAG)
    if not signature:
        return (
            "its gate verdict is not signed (registered outside the pipeline, or before "
            "verdicts were signed)"
        )
    if not verifies(key, _body(model, version, run_id, tags), signature):
        return (
            "its gate verdict's signature does not match (tags or digests changed after "
            f"registration, or signed with a key not in promotion.verdict_key_file/${KEY_ENV})"
        )
    return None


def require_verdict(key: Key, version: Any) -> None:
    """Raise UntrustedVersionError unless the registry version's signed verdict verifies: the
    check before anything of it (serving code, artifacts) is imported or run on this host."""
    tags = dict(version.tags)
    problem = verdict_problem(key, version.name, str(version.version), version.run_id, tags)
    if problem is not None:
        raise UntrustedVersionError(
            f"v{version.version} is not trusted, its gate verdict signature does not hold: "
            f"{problem}; nothing recorded with it is run"
        )
