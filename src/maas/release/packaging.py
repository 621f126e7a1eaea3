"""MLflow version -> BentoML model -> Bento -> OCI image -> infra-validated, tags written back.

Only the serving artifacts travel (ONNX graph, preprocessing JSON, model config), each
sha256-verified against the version's tags; nothing is unpickled. Every step reuses what
already exists for the version, so packaging twice builds nothing twice. With the gate key,
the version's signed verdict is verified before its recorded code is downloaded or run, and
an earlier infra-validation is reused only when packaging signed it (maas.release.attestation).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.clock import timed, utc_timestamp
from maas.config import PackagingParams, RegistryParams, ServingParams
from maas.errors import PackagingError
from maas.release import containers
from maas.release.attestation import SIGNATURE_TAG, reusable_validation, signature_tag
from maas.release.bento import bento_model_path, build_bento, create_bento_model
from maas.release.images import build_image, ensure_base_image, image_name
from maas.release.infra_validation import expected_predictions, infra_validate
from maas.serving.inference import request_spec
from maas.tracking.keyring import Key, load_key
from maas.tracking.registry import (
    download_serving_code,
    release_tag,
    resolve_version,
    set_version_tags,
    version_digests,
)
from maas.tracking.serving_code import DIGEST_TAG
from maas.tracking.verdict import require_verdict

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class PackageResult:
    model: str
    version: str
    bento_tag: str
    image: str | None = None
    image_id: str | None = None
    image_size_bytes: int | None = None
    image_user: str | None = None
    backend: str | None = None
    infra_validation: str = "not run"
    latency_ms: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated_image(self) -> tuple[str, str]:
        """The name and ID of the image that passed infra-validation; only such an image may
        serve, and it runs by ID (the name is a mutable tag)."""
        if self.image is None or not self.image_id or self.infra_validation != "passed":
            raise PackagingError(f"v{self.version} has no validated image: {self.infra_validation}")
        return self.image, self.image_id


def package_version(
    client: MlflowClient,
    registry: RegistryParams,
    packaging: PackagingParams,
    serving: ServingParams,
    ref: str,
    backend: str | None = None,
    *,
    verdict_key_file: Path,
) -> PackageResult:
    """Package one version: BentoML model, Bento, image (when a backend works), validation.

    The Bento and the infra-validation reference use the serving code recorded with the
    version. Raises PackagingError / ArtifactIntegrityError / ServingCodeError when the version
    cannot be packaged; an image that fails infra-validation is reported in the result and
    tagged on the version.

    `verdict_key_file` (promotion.verdict_key_file; $MAAS_GATE_KEY wins): the version's
    signed verdict must verify before its recorded code is downloaded or run
    (UntrustedVersionError), and what packaging concludes is signed; an earlier
    infra-validation is reused only where its signature verifies.
    """
    version = resolve_version(client, registry.model_name, ref)
    key = load_key(verdict_key_file)
    require_verdict(key, version)
    with tempfile.TemporaryDirectory(prefix="maas-package-") as tmp:
        code = download_serving_code(client, version, Path(tmp))
        return _package(client, registry, packaging, serving, version, code, backend, key)


def _package(
    client: MlflowClient,
    registry: RegistryParams,
    packaging: PackagingParams,
    serving: ServingParams,
    version: Any,
    code: Path,
    backend: str | None,
    key: Key | None,
) -> PackageResult:
    number = str(version.version)
    timings: dict[str, float] = {}
    with timed(timings, "bento_model"):
        model_tag = create_bento_model(client, registry, version)
    with timed(timings, "bento_build"):
        bento_tag, bento_reused = build_bento(
            registry.model_name,
            number,
            model_tag,
            version_digests(version),
            code,
            version.tags[DIGEST_TAG],
            packaging,
            serving,
        )
    result = PackageResult(registry.model_name, number, bento_tag, timings=timings)
    if bento_reused:
        result.reused.append("bento")
    chosen, rejected = containers.select_backend(backend or packaging.backend)
    runtime = containers.runtime_for(chosen) if chosen else None
    if chosen is None or runtime is None:
        why = "; ".join(rejected) if chosen is None else f"{chosen} builds but nothing runs images"
        result.note = f"no image built: no working container backend ({why})"
        # Only the Bento is new: an image validated elsewhere keeps its tags.
        set_version_tags(client, registry.model_name, number, {"bento_tag": bento_tag})
        return result
    result.backend = chosen
    tags = _image(result, release_tag(version), dict(version.tags), runtime, packaging, key)
    if "infra_validation" in result.reused:
        return result
    records, expected = expected_predictions(
        f"models:/{registry.model_name}/{number}",
        packaging.infra_validation.sample_rows,
        code,
        bento_model_path(model_tag),
    )
    assert result.image is not None  # set by _image
    with timed(timings, "infra_validation"):
        report = infra_validate(
            runtime,
            result.image,
            number,
            records,
            expected,
            packaging,
            serving,
            request_spec(bento_model_path(model_tag)),
        )
    result.latency_ms = report.latency_ms
    result.infra_validation = "passed" if report.passed else f"failed: {report.reason}"
    tags |= {"infra_validation": result.infra_validation, "packaged_at": utc_timestamp()}
    if report.passed:
        tags["infra_latency_ms"] = json.dumps(report.latency_ms)
    tags[SIGNATURE_TAG] = signature_tag(key, registry.model_name, number, tags)
    set_version_tags(client, registry.model_name, number, tags)
    return result


def _image(
    result: PackageResult,
    release: str,
    current: dict[str, str],
    runtime: str,
    packaging: PackagingParams,
    key: Key | None,
) -> dict[str, str]:
    """The version's image into `result`: reused when it holds this Bento (and, when its
    validation passed before and packaging signed that, the result too), else built. Returns
    the tags to write."""
    assert result.backend is not None
    image = image_name(packaging, result.model, release)
    info = containers.inspect_image(runtime, image)
    if info is not None and info.labels.get("org.maas.bento") == result.bento_tag:
        result.reused.append("image")
        if reusable_validation(key, result.model, result.version, current, info.id):
            result.reused.append("infra_validation")
            result.infra_validation = "passed"
            result.latency_ms = json.loads(current.get("infra_latency_ms") or "{}")
    else:
        with timed(result.timings, "base_image"):
            ensure_base_image(runtime, packaging)
        with timed(result.timings, "image_build"):
            info = build_image(result.bento_tag, image, result.backend, runtime, packaging)
    result.image, result.image_id, result.image_size_bytes = image, info.id, info.size_bytes
    result.image_user = containers.image_user(runtime, image)
    return {
        "bento_tag": result.bento_tag,
        "image": image,
        "image_id": info.id,
        "image_size_bytes": str(info.size_bytes),
    }
