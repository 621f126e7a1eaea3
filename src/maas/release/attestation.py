"""What packaging concluded about a version's image, signed: packaging again reuses an image's
infra-validation only when this project's packaging wrote it.

The `image_id` and `infra_validation` tags are tags: anyone with registry write access can
flip `failed` to `passed`. Packaging signs, with the gate key (promotion.verdict_key_file /
$MAAS_GATE_KEY), the model, the version, the Bento, the image ID, the validation result and
its latencies (tag `packaging_signature`); a later packaging trusts a `passed` only when that
signature verifies for the very image it found, else it validates again.
"""

from __future__ import annotations

from collections.abc import Mapping

from maas.tracking.keyring import Key, sign_json, verifies

SIGNATURE_TAG = "packaging_signature"
SIGNED_TAGS = ("bento_tag", "image", "image_id", "infra_validation", "infra_latency_ms")


def _body(model: str, version: str, tags: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "purpose": "packaging",  # never valid as another kind of signature
        "model": model,
        "version": str(version),
        **{name: tags.get(name) for name in SIGNED_TAGS},
    }


def sign_packaging(key: Key, model: str, version: str, tags: Mapping[str, str]) -> str:
    return sign_json(key, _body(model, version, tags))


def signature_tag(key: Key | None, model: str, version: str, tags: Mapping[str, str]) -> str:
    """The `packaging_signature` value to write with `tags`: empty without a key, so that a
    signature of an earlier packaging never stays beside new results."""
    return sign_packaging(key, model, version, tags) if key else ""


def reusable_validation(
    key: Key | None, model: str, version: str, current: Mapping[str, str], image_id: str
) -> bool:
    """Whether the version's recorded infra-validation (`current`: its tags) may stand for the
    image found (`image_id`): it passed, for this image, and packaging signed it."""
    if not key or current.get("image_id") != image_id:
        return False
    if current.get("infra_validation") != "passed":
        return False
    return verifies(key, _body(model, version, current), current.get(SIGNATURE_TAG) or "")
