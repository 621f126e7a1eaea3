"""The OCI image of a Bento: built with the chosen backend on the maas base image."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

from maas.config import PackagingParams
from maas.errors import PackagingError
from maas.files import cache_home
from maas.naming import named
from maas.release import containers
from maas.release.base_image import build_base_image

log = logging.getLogger(__name__)


def image_name(packaging: PackagingParams, model_name: str, release: str) -> str:
    """`<prefix>-<model>:v<N>-<id>` (the version's `release_tag`): unique per version of one
    tracking store, so another project's v<N> never takes over this one's tag."""
    return f"{named(packaging.image_prefix, model_name)}:{release}"


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
        build_base_image(
            runtime,
            packaging.base_image,
            cache_home() / "base",
            suite=packaging.base_image_suite,
            mirror=packaging.base_image_mirror,
        )
        return
    pulled = subprocess.run(
        [runtime, "pull", packaging.base_image], capture_output=True, text=True, timeout=600
    )
    if pulled.returncode != 0:
        reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise PackagingError(
            f"base image {packaging.base_image} (packaging.base_image) is not here and "
            f"`{runtime} pull` failed: {reason}"
        )
