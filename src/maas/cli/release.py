"""Commands that make a version an image or a local server: `package`, `base-image`, `serve`."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from maas.cli.common import (
    JsonOption,
    Project,
    handled,
    out,
    with_project,
)
from maas.tracking.registry import CHAMPION

RefArgument = Annotated[str, typer.Argument(help="Version number or alias.")]


@handled
@with_project
def package(
    project: Project,
    ref: RefArgument = CHAMPION,
    backend: Annotated[
        str | None, typer.Option(help="docker | podman | buildah (default: packaging.backend).")
    ] = None,
    require_image: Annotated[
        bool, typer.Option(help="Exit non-zero when no image could be built.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Package a version: verified BentoML model → Bento → OCI image → infra-validation."""
    params = project.load()
    from maas.cli.render import print_package
    from maas.release.packaging import package_version
    from maas.tracking.store import connect

    result = package_version(
        connect(params.registry),
        params.registry,
        params.packaging,
        params.serving,
        ref,
        backend=backend,
        verdict_key_file=params.promotion.verdict_key_file,
    )
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        print_package(result)
    if result.image is None and require_image:
        raise typer.Exit(1)
    if result.image is not None and not result.infra_validation.startswith("passed"):
        raise typer.Exit(1)


@handled
@with_project
def base_image(
    project: Project,
    rebuild: Annotated[bool, typer.Option(help="Rebuild even if it exists.")] = False,
    runtime: Annotated[str, typer.Option(help="podman or docker (imports the image).")] = "",
) -> None:
    """Make the offline base image (debootstrap + Python + uv) named by packaging.base_image."""
    params = project.load()
    from maas.release.base_image import make_base_image

    info = make_base_image(params.packaging, runtime, rebuild)
    out.print(f"{info.name} {info.id[:12]} {info.size_bytes / 1e6:.0f} MB")


@handled
@with_project
def serve(
    project: Project,
    ref: RefArgument = CHAMPION,
    port: Annotated[int, typer.Option(help="HTTP port (3000 is the controller's address).")] = 3001,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Serve a version locally with BentoML (no container), for development."""
    params = project.load()
    from maas.release.bento import dev_server
    from maas.tracking.store import connect

    client = connect(params.registry)
    version, tag, command = dev_server(
        client, params.registry, params.packaging, params.serving, ref, host, port
    )
    out.print(f"serving {params.registry.model_name} v{version} ({tag}) on http://{host}:{port}")
    os.execv(command[0], command)
