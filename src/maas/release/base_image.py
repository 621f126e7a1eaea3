"""The offline base image: Debian made with debootstrap, Python 3 and uv, imported into the
container store (no registry is needed; the root filesystem tarball is cached)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from maas.config import PackagingParams
from maas.errors import ContainerError
from maas.files import cache_home
from maas.release.containers import (
    CA_BUNDLE_IN_IMAGE,
    ImageInfo,
    backend_problem,
    inspect_image,
    run_tool,
)

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian's signing keys: debootstrap checks the Release file's signature against them, and
# every package against the Release file's hashes (so an http mirror cannot swap a package)
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# the uv BentoML's image build runs, pinned by version and by the sha256 of its PyPI wheel
UV_WHEEL = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
UV_SHA256 = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"


def apt_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror apt already uses on this machine (debootstrap needs one)."""
    if sources is None:
        listed = sorted(Path("/etc/apt/sources.list.d").glob("*"))
        sources = [Path("/etc/apt/sources.list"), *listed]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:URIs:|^deb)\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M):
            uri = match.group(1)
            if "security" not in uri and uri.startswith("http"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _uv_wheel(cache_dir: Path) -> Path:
    """The uv wheel from PyPI, cached: BentoML's Dockerfile needs uv and would otherwise
    install it with the system pip, which Debian's Python refuses (PEP 668)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / UV_WHEEL
    if not wheel.is_file():
        pinned = cache_dir / "uv-requirements.txt"
        pinned.write_text(f"uv=={UV_WHEEL.split('-')[1]} --hash=sha256:{UV_SHA256}\n")
        run_tool(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--only-binary",
                ":all:",
                "--platform",
                "manylinux2014_x86_64",
                "--dest",
                str(cache_dir),
                "-r",
                str(pinned),
            ],
            timeout=300,
        )
    if not wheel.is_file():
        raise ContainerError(f"could not download {UV_WHEEL} into {cache_dir}")
    found = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if found != UV_SHA256:
        wheel.unlink()
        raise ContainerError(
            f"{wheel} has sha256 {found}, not the pinned {UV_SHA256}: removed; nothing of it "
            "goes into the image"
        )
    return wheel


def uv_binary(cache_dir: Path, dest: Path) -> Path:
    """The pinned uv's executable, taken from its verified wheel (cached under `cache_dir`)
    into `dest/usr/local/bin/uv`: the serving lock is made, and checked, with the uv that
    installs it in the image."""
    _install_uv(dest, _uv_wheel(cache_dir))
    return dest / "usr/local/bin/uv"


def _install_uv(rootfs: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.endswith(("/scripts/uv", "/scripts/uvx")):
                target = rootfs / "usr/local/bin" / Path(member).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
                target.chmod(0o755)


def _slim_rootfs(rootfs: Path) -> None:
    """Drop what a serving image never reads: apt caches and lists, docs, man pages, locales."""
    for relative in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ):
        folder = rootfs / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def build_base_image(
    runtime: str,
    image: str,
    cache_dir: Path,
    suite: str = "bookworm",
    mirror: str | None = None,
    rebuild: bool = False,
) -> ImageInfo:
    """A Debian base image with Python 3, uv and useradd, made with debootstrap (no registry).

    The root filesystem tarball is cached under `cache_dir`, so a new machine or a wiped image
    store only pays for the import (seconds), not the debootstrap (about a minute).
    """
    existing = inspect_image(runtime, image)
    if existing is not None and not rebuild:
        return existing
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"rootfs-{suite}.tar"
    if rebuild or not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise ContainerError(
                "debootstrap is not installed: `apt-get install debootstrap` (or set "
                "packaging.base_image to an image your container tool can pull)"
            )
        wheel = _uv_wheel(cache_dir / "wheels")
        with tempfile.TemporaryDirectory(prefix="maas-rootfs-", dir=cache_dir) as tmp:
            rootfs = Path(tmp) / "rootfs"
            mirror = mirror or apt_mirror()
            log.info("debootstrap %s from %s (about a minute)", suite, mirror)
            if not DEBIAN_KEYRING.is_file():
                raise ContainerError(
                    f"{DEBIAN_KEYRING} is missing: `apt-get install debian-archive-keyring` "
                    "(debootstrap checks the mirror's signatures with it)"
                )
            run_tool(
                [
                    "debootstrap",
                    "--force-check-gpg",
                    f"--keyring={DEBIAN_KEYRING}",
                    "--variant=minbase",
                    "--include=python3,ca-certificates,passwd",
                    suite,
                    str(rootfs),
                    mirror,
                ],
                timeout=900,
            )
            _install_uv(rootfs, wheel)
            _slim_rootfs(rootfs)
            partial = tarball.with_suffix(".partial")
            with tarfile.open(partial, "w") as archive:
                archive.add(rootfs, arcname=".")
            partial.replace(tarball)  # atomic: a killed run never leaves a half tarball
    run_tool(
        [
            runtime,
            "import",
            "--change",
            f"ENV SSL_CERT_FILE={CA_BUNDLE_IN_IMAGE}",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            'CMD ["python3"]',
            str(tarball),
            image,
        ],
        timeout=600,
    )
    info = inspect_image(runtime, image)
    if info is None:
        raise ContainerError(f"{runtime} import did not produce {image}")
    log.info("base image %s ready (%.0f MB)", image, info.size_bytes / 1e6)
    return info


def make_base_image(
    packaging: PackagingParams, runtime: str = "", rebuild: bool = False
) -> ImageInfo:
    """`maas base-image`: the image packaging.base_image names, with `runtime` (podman or
    docker; default: the first that works here)."""
    tool = runtime or next(
        (name for name in ("podman", "docker") if backend_problem(name) is None), ""
    )
    if not tool:
        raise ContainerError("neither podman nor docker works here")
    return build_base_image(
        tool,
        packaging.base_image,
        cache_home() / "base",
        suite=packaging.base_image_suite,
        mirror=packaging.base_image_mirror,
        rebuild=rebuild,
    )
