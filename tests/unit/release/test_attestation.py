"""What packaging concluded, signed: a registry writer who flips `infra_validation` from
`failed` to `passed` (or points `image_id` at another image) does not get that image's
validation skipped."""

from __future__ import annotations

import json

import pytest

from maas.release import containers, packaging
from maas.release.attestation import SIGNATURE_TAG, reusable_validation, signature_tag
from maas.release.packaging import PackageResult

KEY = "gate-key-of-this-project-" + "0" * 16
IMAGE_ID = "sha256:" + "ab" * 32


def packaged(result: str, key: str | None = KEY) -> dict[str, str]:
    """The tags packaging writes after validating IMAGE_ID (v3 of model m)."""
    tags = {
        "bento_tag": "m:v3-0a1b",
        "image": "maas-m:v3-0a1b",
        "image_id": IMAGE_ID,
        "infra_validation": result,
    }
    if result == "passed":
        tags["infra_latency_ms"] = json.dumps({"p50": 3.0})
    return {**tags, SIGNATURE_TAG: signature_tag(key, "m", "3", tags)}


def test_a_validation_flipped_to_passed_is_not_trusted() -> None:
    assert reusable_validation(KEY, "m", "3", packaged("passed"), IMAGE_ID)
    flipped = {**packaged("failed: /readyz not ready"), "infra_validation": "passed"}
    assert not reusable_validation(KEY, "m", "3", flipped, IMAGE_ID)
    other_image = "sha256:" + "cd" * 32
    moved = {**packaged("passed"), "image_id": other_image}  # pointed at another image
    assert not reusable_validation(KEY, "m", "3", moved, other_image)
    assert not reusable_validation(KEY, "m", "3", packaged("passed"), other_image)
    assert not reusable_validation(KEY, "m", "4", packaged("passed"), IMAGE_ID)  # another version
    assert not reusable_validation(None, "m", "3", packaged("passed"), IMAGE_ID)  # no key
    unsigned = {k: v for k, v in packaged("passed").items() if k != SIGNATURE_TAG}
    assert not reusable_validation(KEY, "m", "3", unsigned, IMAGE_ID)  # packaged before signing
    assert not reusable_validation(KEY, "m", "3", packaged("passed", key=None), IMAGE_ID)


@pytest.mark.parametrize("trusted", [True, False])
def test_packaging_again_validates_unless_the_passed_result_is_signed(
    monkeypatch, params, trusted: bool
) -> None:
    """The reuse path itself (`_image`, the image found by its Bento label): a flipped
    `passed` leaves infra-validation to run again."""
    bento = "m:v3-0a1b"
    info = containers.ImageInfo("maas-m:v3-0a1b", IMAGE_ID, 1000, {"org.maas.bento": bento})
    monkeypatch.setattr(containers, "inspect_image", lambda runtime, image: info)
    monkeypatch.setattr(containers, "image_user", lambda runtime, image: "maas")
    current = packaged("passed" if trusted else "failed: /readyz not ready")
    current["infra_validation"] = "passed"
    result = PackageResult("m", "3", bento, backend="podman")
    packaging._image(result, "v3-0a1b", current, "podman", params.packaging, KEY)
    assert ("infra_validation" in result.reused) is trusted
    assert result.infra_validation == ("passed" if trusted else "not run")
