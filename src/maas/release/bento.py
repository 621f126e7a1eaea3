"""A registered version as BentoML sees it: the verified BentoML model, and the Bento built
from the serving code recorded with the version (`maas.tracking.serving_code`), not from
whatever the checkout holds now."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.config import PackagingParams, RegistryParams, ServingParams
from maas.errors import PackagingError
from maas.files import cache_home
from maas.naming import named
from maas.release.base_image import uv_binary
from maas.serving.inference import SERVING_FILES, verify_digests
from maas.tracking.registry import (
    download_serving_artifacts,
    release_tag,
    resolve_version,
    version_digests,
)
from maas.tracking.serving_code import BENTOFILE, SRC_DIR, read_bentofile

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LINEAGE_TAGS = (
    "git_commit",
    "train_partitions",
    "test_partitions",
    "validation_status",
    "gate_passed",
    "params_digest",
)


def bento_model_tag(model_name: str, release: str) -> str:
    """The BentoML model of a version, named by its `release_tag` (`v<N>-<id>`)."""
    return f"{model_name}:{release}"


def create_bento_model(client: MlflowClient, registry: RegistryParams, version: Any) -> str:
    """Download and verify the serving files, then store them as a BentoML model.

    Idempotent: an existing BentoML model for the version is re-verified and reused.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = bento_model_tag(registry.model_name, release_tag(version))
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
            "test_metrics": {
                k[5:]: float(v)
                for k, v in tags.items()
                if k.startswith("test_") and k != "test_partitions"
            },
            **{key: tags.get(key, "") for key in LINEAGE_TAGS},
        }
        labels = {
            "registered_model": registry.model_name,
            "model_version": str(version.version),
            "run_id": str(version.run_id),
        }
        labels |= {f"sha256_{name.replace('.', '_')}": value for name, value in digests.items()}
        with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
            for name in SERVING_FILES:
                shutil.copy(folder / name, Path(model.path) / name)
            Path(model.path, "metadata.json").write_text(json.dumps(metadata, indent=1))
    log.info("bentoml model %s created from %s v%s", tag, registry.model_name, version.version)
    return tag


def bento_model_path(tag: str) -> Path:
    """The folder of a BentoML model (its verified serving files)."""
    import bentoml

    return Path(bentoml.models.get(tag).path)


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
    version: str, code_digest: str, args: Mapping[str, str], model_digests: Mapping[str, str]
) -> str:
    """v<N>-<digest of everything that goes into the Bento>: same inputs, same Bento.

    The model files' digests are part of it: a registry rebuilt from scratch reuses version
    numbers, and must not reuse an image holding another model under the same number."""
    digest = hashlib.sha256(code_digest.encode())
    digest.update(json.dumps(dict(args), sort_keys=True).encode())
    digest.update(json.dumps(dict(model_digests), sort_keys=True).encode())
    return f"v{version}-{digest.hexdigest()[:10]}"


def build_bento(
    model_name: str,
    version: str,
    model_tag: str,
    model_digests: Mapping[str, str],
    code: Path,
    code_digest: str,
    packaging: PackagingParams,
    serving: ServingParams,
) -> tuple[str, bool]:
    """Build (or reuse) the Bento of `version` from its recorded serving code (the build
    context `code`, verified to `code_digest`); returns (bento tag, reused).

    `bentoml build` runs in a fresh process: the service module reads its Bento arguments
    at import, so an import in this process could carry another version's arguments.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    args = service_args(model_tag, packaging, serving)
    name = named(packaging.image_prefix, model_name)
    tag = f"{name}:{bento_version(version, code_digest, args, model_digests)}"
    try:
        bentoml.bentos.get(tag)
        return tag, True
    except NotFound:
        pass
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "build",
        str(code),
        "--bentofile",
        str(code / "bentofile.yaml"),
        "--name",
        name,
        "--version",
        tag.split(":")[1],
        "--label",
        f"registered_model={model_name}",
        "--label",
        f"model_version={version}",
        "--output",
        "tag",
    ]
    for key, value in args.items():
        command += ["--arg", f"{key}={value}"]
    # BentoML runs the uv on PATH, else pip-installs whatever uv the index has into this
    # environment: give it the pinned one (maas.release.base_image)
    with tempfile.TemporaryDirectory(prefix="maas-uv-") as tmp:
        uv = uv_binary(cache_home() / "base" / "wheels", Path(tmp))
        env = {**os.environ, "PATH": f"{uv.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise PackagingError(f"bentoml build failed for {model_name} v{version}:\n{tail}")
    bentoml.bentos.get(tag)  # raises if the build did not store it
    log.info("bento %s built", tag)
    return tag, False


def serve_command(
    model_tag: str,
    host: str,
    port: int,
    serving: ServingParams,
    packaging: PackagingParams,
    bentofile: Path = BENTOFILE,
) -> list[str]:
    """`bentoml serve` of the service for one BentoML model (development, no container: the
    checkout's serving code, which may differ from the code the version was registered with)."""
    service = read_bentofile(bentofile)["service"]
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        service,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(SRC_DIR),
    ]
    for key, value in service_args(model_tag, packaging, serving).items():
        command += ["--arg", f"{key}={value}"]
    return command


def dev_server(
    client: MlflowClient,
    registry: RegistryParams,
    packaging: PackagingParams,
    serving: ServingParams,
    ref: str,
    host: str,
    port: int,
) -> tuple[str, str, list[str]]:
    """`maas serve`: (version, BentoML model tag, the `bentoml serve` command) for a version
    or alias, its serving files verified into the BentoML store first."""
    version = resolve_version(client, registry.model_name, ref)
    tag = create_bento_model(client, registry, version)
    return str(version.version), tag, serve_command(tag, host, port, serving, packaging)
