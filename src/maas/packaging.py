"""MLflow version → BentoML model → Bento → OCI image → infra-validated, tags written back.

Only the serving artifacts travel (ONNX graph, preprocessing JSON, model config), each
sha256-verified against the version's tags; nothing is unpickled. Every step reuses what
already exists for the version, so packaging twice builds nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maas import containers
from maas.config import PackagingParams, RegistryParams, ServingParams
from maas.inference import SERVING_FILES, verify_digests

log = logging.getLogger(__name__)

SRC_DIR = Path(__file__).resolve().parent.parent  # the Bento's build context (holds maas/)
BENTOFILE = Path("bentofile.yaml")
SERVICE_FILES = ("maas/__init__.py", "maas/service.py", "maas/inference.py", "maas/features.py")
LINEAGE_TAGS = ("git_commit", "train_partitions", "test_partitions", "validation_status",
                "gate_passed", "params_digest")  # fmt: skip


class PackagingError(RuntimeError):
    """A version cannot be packaged; the message says which and why."""


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


def resolve_version(client: Any, registry: RegistryParams, ref: str) -> Any:
    """`champion` (or any alias) or a version number → ModelVersion."""
    from maas.registry import get_alias_version, get_version

    if ref.isdigit():
        return get_version(client, registry.model_name, ref)
    version = get_alias_version(client, registry.model_name, ref)
    if version is None:
        raise PackagingError(f"model {registry.model_name!r} has no alias {ref!r}")
    return version


def bento_model_tag(model_name: str, version: str) -> str:
    return f"{model_name}:v{version}"


def image_name(packaging: PackagingParams, model_name: str, version: str) -> str:
    return f"{packaging.image_prefix}-{model_name.lower()}:v{version}"


def create_bento_model(client: Any, registry: RegistryParams, version: Any) -> str:
    """Download and verify the serving files, then store them as a BentoML model.

    Idempotent: an existing BentoML model for the version is re-verified and reused.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from maas.registry import download_serving_artifacts, version_digests

    tag = bento_model_tag(registry.model_name, str(version.version))
    digests = version_digests(version)
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        existing = None
    if existing is not None:
        verify_digests(Path(existing.path), digests)
        return tag
    with tempfile.TemporaryDirectory(prefix="maas-package-") as tmp:
        folder = download_serving_artifacts(client, version, Path(tmp))  # verifies sha256
        tags = version.tags
        metadata = {
            "registered_model": registry.model_name,
            "model_version": str(version.version),
            "run_id": version.run_id,
            "sha256": digests,
            "test_metrics": {k[5:]: float(v) for k, v in tags.items() if k.startswith("test_")
                             and k != "test_partitions"},
            **{key: tags.get(key, "") for key in LINEAGE_TAGS},
        }  # fmt: skip
        labels = {"registered_model": registry.model_name, "model_version": str(version.version),
                  "run_id": str(version.run_id)}  # fmt: skip
        labels |= {f"sha256_{name.replace('.', '_')}": value for name, value in digests.items()}
        with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
            for name in SERVING_FILES:
                shutil.copy(folder / name, Path(model.path) / name)
            Path(model.path, "metadata.json").write_text(json.dumps(metadata, indent=1))
    log.info("bentoml model %s created from %s v%s", tag, registry.model_name, version.version)
    return tag


def service_args(
    model_tag: str, packaging: PackagingParams, serving: ServingParams
) -> dict[str, str]:
    """The Bento arguments of `maas.service.ServiceArgs` for one version."""
    return {
        "model_tag": model_tag,
        "base_image": packaging.base_image,
        "max_records": str(serving.max_records),
        "workers": str(serving.workers),
        "tracing": str(serving.tracing).lower(),
        "metrics": str(serving.metrics).lower(),
    }


def bento_version(
    version: str, bentofile: Path, args: Mapping[str, str], model_digests: Mapping[str, str]
) -> str:
    """v<N>-<digest of everything that goes into the Bento>: same inputs, same Bento.

    The model files' digests are part of it: a registry rebuilt from scratch reuses version
    numbers, and must not reuse an image holding another model under the same number."""
    digest = hashlib.sha256(bentofile.read_bytes())
    for name in SERVICE_FILES:
        digest.update((SRC_DIR / name).read_bytes())
    digest.update(json.dumps(dict(args), sort_keys=True).encode())
    digest.update(json.dumps(dict(model_digests), sort_keys=True).encode())
    return f"v{version}-{digest.hexdigest()[:10]}"


def build_bento(
    model_name: str,
    version: str,
    model_tag: str,
    model_digests: Mapping[str, str],
    packaging: PackagingParams,
    serving: ServingParams,
    bentofile: Path = BENTOFILE,
) -> tuple[str, bool]:
    """Build (or reuse) the Bento of `version`; returns (bento tag, reused).

    `bentoml build` runs in a fresh process: the service module reads its Bento arguments
    at import, so an import in this process could carry another version's arguments.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    if not bentofile.is_file():
        raise PackagingError(f"BentoML build file {bentofile} not found")
    args = service_args(model_tag, packaging, serving)
    name = f"{packaging.image_prefix}-{model_name.lower()}"
    tag = f"{name}:{bento_version(version, bentofile, args, model_digests)}"
    try:
        bentoml.bentos.get(tag)
        return tag, True
    except NotFound:
        pass
    command = [sys.executable, "-m", "bentoml", "build", str(SRC_DIR), "--bentofile",
               str(bentofile.resolve()), "--name", name, "--version", tag.split(":")[1],
               "--label", f"registered_model={model_name}", "--label",
               f"model_version={version}", "--output", "tag"]  # fmt: skip
    for key, value in args.items():
        command += ["--arg", f"{key}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise PackagingError(f"bentoml build failed for {model_name} v{version}:\n{tail}")
    bentoml.bentos.get(tag)  # raises if the build did not store it
    log.info("bento %s built", tag)
    return tag, False


def build_options(packaging: PackagingParams) -> dict[str, Any]:
    """`bentoml.container.build` options: the CA bundle mount and the user's extras."""
    options: dict[str, Any] = dict(packaging.build_options)
    volumes = options.pop("volume", [])
    volumes = [volumes] if isinstance(volumes, str) else list(volumes)
    if packaging.ca_bundle is not None and packaging.ca_bundle.is_file():
        volumes.append(f"{packaging.ca_bundle}:{containers.CA_BUNDLE_IN_IMAGE}:ro")
    if volumes:
        options["volume"] = volumes
    return options


def build_image(
    bento_tag: str, image: str, backend: str, runtime: str, packaging: PackagingParams
) -> containers.ImageInfo:
    """Containerize the Bento with `backend` and tag it `image`."""
    import bentoml

    options: dict[str, Any] = {**build_options(packaging), "label": {"org.maas.bento": bento_tag}}
    log.info("building image %s from %s with %s", image, bento_tag, backend)
    build: Any = bentoml.container.build  # typed per backend literal; ours is chosen at run time
    build(bento_tag, backend=backend, image_tag=(image,), **options)
    info = containers.inspect_image(runtime, image)
    if info is None or info.labels.get("org.maas.bento") != bento_tag:
        raise PackagingError(
            f"{backend} did not produce image {image} from {bento_tag} (see the build log "
            "above; behind a TLS-intercepting proxy set packaging.ca_bundle)"
        )
    return info


def ensure_base_image(runtime: str, packaging: PackagingParams) -> None:
    """The maas base image is made here when missing; any other base image is the user's:
    pulled when missing, and named in the error when that fails (before any build starts)."""
    if containers.inspect_image(runtime, packaging.base_image) is not None:
        return
    if packaging.base_image.startswith("localhost/maas-base"):
        containers.build_base_image(
            runtime,
            packaging.base_image,
            containers.cache_home() / "base",
            suite=packaging.base_image_suite,
            mirror=packaging.base_image_mirror,
        )
        return
    pulled = subprocess.run([runtime, "pull", packaging.base_image], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    if pulled.returncode != 0:
        reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise PackagingError(
            f"base image {packaging.base_image} (packaging.base_image) is not here and "
            f"`{runtime} pull` failed: {reason}"
        )


# --- infra-validation ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_records(frame: Any, rows: int) -> list[dict[str, Any]]:
    """Test rows as JSON records (NaN → null, numpy → Python)."""
    records: list[dict[str, Any]] = json.loads(frame.head(rows).to_json(orient="records"))
    return records


def expected_predictions(model_uri: str, rows: int) -> tuple[list[dict[str, Any]], list[float]]:
    """The version's stored test sample and the MLflow pyfunc's delay probabilities for it."""
    import mlflow
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    example = pyfunc.input_example
    if example is None or len(example) == 0:
        raise PackagingError(f"{model_uri} has no input example to validate the image with")
    records = sample_records(example, rows)
    probs = pyfunc.predict(pd.DataFrame(records))["delay_probability"]
    return records, [float(p) for p in probs]


@dataclass
class ValidationReport:
    passed: bool
    reason: str
    latency_ms: dict[str, float]
    max_abs_diff: float | None = None


def validate_endpoint(
    base_url: str,
    version: str,
    records: list[dict[str, Any]],
    expected: list[float],
    tolerance: float,
    latency_requests: int,
    max_records: int,
) -> ValidationReport:
    """Replay the sample against a ready service; compare; time single-record requests."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=30) as http:
        got: list[float] = []
        for start in range(0, len(records), max_records):
            response = http.post("/predict", json={"flights": records[start : start + max_records]})
            if response.status_code != 200:
                return ValidationReport(
                    False, f"/predict answered {response.status_code}: {response.text[:200]}", {}
                )
            body = response.json()
            if body.get("model_version") != version:
                return ValidationReport(
                    False, f"served model_version {body.get('model_version')!r}, not {version}", {}
                )
            got += [p["delay_probability"] for p in body["predictions"]]
        diff = max(abs(a - b) for a, b in zip(got, expected, strict=True))
        if diff > tolerance:
            return ValidationReport(
                False, f"predictions differ from the MLflow pyfunc by {diff:.3g} > {tolerance}",
                {}, diff,
            )  # fmt: skip
        timings = []
        for index in range(latency_requests):
            payload = {"flights": [records[index % len(records)]]}
            started = time.perf_counter()
            response = http.post("/predict", json=payload)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                return ValidationReport(False, f"single-record request {response.status_code}", {})
    timings.sort()
    latency = {
        "p50": round(timings[len(timings) // 2], 3),
        "p99": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 3),
    }
    return ValidationReport(True, f"{len(records)} rows match the pyfunc", latency, diff)


def wait_ready(base_url: str, timeout_s: float, alive: Any = None) -> bool:
    import httpx

    def ready() -> bool:
        if alive is not None and not alive():
            raise PackagingError("the container exited before it was ready")
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return containers.wait_until(ready, timeout_s, interval_s=0.2)


def infra_validate(
    runtime: str,
    image: str,
    version: str,
    records: list[dict[str, Any]],
    expected: list[float],
    packaging: PackagingParams,
    serving: ServingParams,
) -> ValidationReport:
    """Start the image on a free port, wait for /readyz, replay the sample, stop it."""
    settings = packaging.infra_validation
    port = free_port()
    name = f"maas-validate-{image.split('/')[-1].replace(':', '-')}-{port}"
    container = containers.run_container(runtime, image, name, port, network=packaging.network)
    base_url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        try:
            ready = wait_ready(
                base_url,
                settings.ready_timeout_s,
                alive=lambda: containers.container_running(runtime, container),
            )
        except PackagingError as error:
            logs = containers.container_logs(runtime, container)
            return ValidationReport(False, f"{error}: {logs[-500:]}", {})
        if not ready:
            return ValidationReport(
                False, f"/readyz not ready within {settings.ready_timeout_s:.0f}s", {}
            )
        cold_start = time.perf_counter() - started
        report = validate_endpoint(
            base_url,
            version,
            records,
            expected,
            settings.tolerance,
            settings.latency_requests,
            serving.max_records,
        )
        report.latency_ms["cold_start_to_ready"] = round(cold_start * 1000, 1)
        return report
    finally:
        containers.remove_container(runtime, container)


# --- the whole step ------------------------------------------------------------------------


def write_back(client: Any, model_name: str, version: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def package_version(
    client: Any,
    registry: RegistryParams,
    packaging: PackagingParams,
    serving: ServingParams,
    ref: str,
    backend: str | None = None,
    bentofile: Path = BENTOFILE,
) -> PackageResult:
    """Package one version: BentoML model, Bento, image (when a backend works), validation.

    Raises PackagingError / ArtifactIntegrityError when the version cannot be packaged; an
    image that fails infra-validation is reported in the result and tagged on the version.
    """
    version = resolve_version(client, registry, ref)
    number = str(version.version)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    model_tag = create_bento_model(client, registry, version)
    timings["bento_model"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    from maas.registry import version_digests

    bento_tag, bento_reused = build_bento(
        registry.model_name,
        number,
        model_tag,
        version_digests(version),
        packaging,
        serving,
        bentofile,
    )
    timings["bento_build"] = round(time.perf_counter() - started, 2)
    result = PackageResult(registry.model_name, number, bento_tag, timings=timings)
    if bento_reused:
        result.reused.append("bento")
    tags = {"bento_tag": bento_tag}

    chosen, rejected = containers.select_backend(backend or packaging.backend)
    runtime = containers.runtime_for(chosen) if chosen else None
    if chosen is None or runtime is None:
        why = "; ".join(rejected) if chosen is None else f"{chosen} builds but nothing runs images"
        result.note = f"no image built: no working container backend ({why})"
        # Only the Bento is new: an image validated elsewhere keeps its tags.
        write_back(client, registry.model_name, number, tags)
        return result
    result.backend = chosen
    image = image_name(packaging, registry.model_name, number)
    current = version.tags
    info = containers.inspect_image(runtime, image)
    if info is not None and info.labels.get("org.maas.bento") == bento_tag:
        result.reused.append("image")
        if current.get("image_id") == info.id and current.get("infra_validation", "").startswith(
            "passed"
        ):
            result.reused.append("infra_validation")
            result.image, result.image_id = image, info.id
            result.image_size_bytes, result.infra_validation = info.size_bytes, "passed"
            result.latency_ms = json.loads(current.get("infra_latency_ms") or "{}")
            result.image_user = containers.image_user(runtime, image)
            return result
    else:
        started = time.perf_counter()
        ensure_base_image(runtime, packaging)
        timings["base_image"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        info = build_image(bento_tag, image, chosen, runtime, packaging)
        timings["image_build"] = round(time.perf_counter() - started, 2)
    result.image, result.image_id, result.image_size_bytes = image, info.id, info.size_bytes
    result.image_user = containers.image_user(runtime, image)
    tags |= {"image": image, "image_id": info.id, "image_size_bytes": str(info.size_bytes)}

    records, expected = expected_predictions(
        f"models:/{registry.model_name}/{number}", packaging.infra_validation.sample_rows
    )
    started = time.perf_counter()
    report = infra_validate(runtime, image, number, records, expected, packaging, serving)
    timings["infra_validation"] = round(time.perf_counter() - started, 2)
    result.latency_ms = report.latency_ms
    result.infra_validation = "passed" if report.passed else f"failed: {report.reason}"
    tags |= {"infra_validation": result.infra_validation, "packaged_at": _now()}
    if report.passed:
        tags["infra_latency_ms"] = json.dumps(report.latency_ms)
    write_back(client, registry.model_name, number, tags)
    return result


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def serve_command(model_tag: str, host: str, port: int, serving: ServingParams,
                  packaging: PackagingParams) -> list[str]:  # fmt: skip
    """`bentoml serve` of the service for one BentoML model (development, no container)."""
    command = [sys.executable, "-m", "bentoml", "serve", "maas.service:FlightDelayService",
               "--host", host, "--port", str(port), "--working-dir", str(SRC_DIR)]  # fmt: skip
    for key, value in service_args(model_tag, packaging, serving).items():
        command += ["--arg", f"{key}={value}"]
    return command
