"""OCI images and containers through the docker / podman / buildah command lines.

BentoML builds the images (`bentoml.container.build`); this module picks the backend, makes
the offline base image, and inspects, runs and stops containers. Only the standard library is
imported, so the controller and the CLI can use it without loading BentoML.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BACKENDS = ("docker", "podman", "buildah")
CA_BUNDLE_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ContainerError(RuntimeError):
    """A container tool is missing or a build/run failed; the message says which and why."""


@dataclass(frozen=True)
class ImageInfo:
    name: str
    id: str
    size_bytes: int
    labels: dict[str, str]


def _run(command: list[str], timeout: float = 60, check: bool = True) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ContainerError(f"{command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ContainerError(
            f"`{' '.join(command[:3])} …` did not finish in {timeout:.0f}s"
        ) from None
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ContainerError(f"`{' '.join(command[:3])} …` failed: {' | '.join(tail)}")
    return done.stdout


def backend_problem(backend: str) -> str | None:
    """None when `backend` can build images here, else why not (checked for real, not assumed:
    a docker CLI without a running daemon does not count)."""
    binary = shutil.which(backend)
    if binary is None:
        return f"{backend} is not installed"
    probe = {"docker": ["info"], "podman": ["info"], "buildah": ["version"]}[backend]
    try:
        done = subprocess.run([binary, *probe], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"`{backend} {probe[0]}` did not answer in 30s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"`{backend} {probe[0]}` failed: {lines[-1] if lines else done.returncode}"
    return None


def select_backend(preferred: str) -> tuple[str | None, list[str]]:
    """(the backend to build with, or None; why each candidate was rejected)."""
    candidates = BACKENDS if preferred == "auto" else (preferred,)
    reasons: list[str] = []
    for backend in candidates:
        problem = backend_problem(backend)
        if problem is None:
            return backend, reasons
        reasons.append(problem)
    return None, reasons


def runtime_for(backend: str) -> str | None:
    """The CLI that runs what `backend` built (buildah builds, podman runs: same storage)."""
    if backend == "buildah":
        return "podman" if shutil.which("podman") else None
    return backend


def inspect_image(runtime: str, image: str) -> ImageInfo | None:
    done = subprocess.run(
        [runtime, "image", "inspect", image], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return None
    data = json.loads(done.stdout)[0]
    labels = data.get("Labels") or data.get("Config", {}).get("Labels") or {}
    return ImageInfo(
        name=image,
        id=str(data["Id"]).removeprefix("sha256:"),
        size_bytes=int(data.get("Size") or data.get("VirtualSize") or 0),
        labels=dict(labels),
    )


def image_user(runtime: str, image: str) -> str:
    out = _run([runtime, "image", "inspect", "--format", "{{.Config.User}}", image])
    return out.strip()


def tag_image(runtime: str, source: str, target: str) -> None:
    _run([runtime, "tag", source, target])


def run_container(
    runtime: str,
    image: str,
    name: str,
    port: int,
    env: dict[str, str] | None = None,
    network: str = "host",
    pass_env: list[str] | None = None,
) -> str:
    """Start `image` detached, answering on 127.0.0.1:`port`; returns the container id.

    `pass_env`: variable names handed over from this process's environment (`--env NAME`),
    so secret values never appear on a command line."""
    _run([runtime, "rm", "--force", "--ignore", name], check=False)
    command = [runtime, "run", "--detach", "--init", "--name", name]
    if network == "host":
        command += ["--network", "host", "--env", f"PORT={port}"]
    else:  # a bridge network publishes the service's default port on loopback
        command += ["--publish", f"127.0.0.1:{port}:3000"]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    for key in pass_env or []:
        command += ["--env", key]
    return _run([*command, image], timeout=120).strip()


def list_containers(runtime: str, name_prefix: str) -> list[str]:
    """Names of containers (running or not) whose name starts with `name_prefix`."""
    out = _run([runtime, "ps", "--all", "--format", "{{.Names}}"], check=False)
    return [name for name in out.split() if name.startswith(name_prefix)]


def container_logs(runtime: str, container: str, lines: int = 30) -> str:
    done = subprocess.run(
        [runtime, "logs", "--tail", str(lines), container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (done.stdout + done.stderr).strip()


def container_running(runtime: str, container: str) -> bool:
    done = subprocess.run(
        [runtime, "inspect", "--format", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode == 0 and done.stdout.strip() == "true"


def container_rss_bytes(runtime: str, container: str) -> int:
    """Resident memory of all processes of a running container, read from the host's /proc
    (the container's cgroup figure also counts page cache; this is what the service holds)."""
    pid = int(_run([runtime, "inspect", "--format", "{{.State.Pid}}", container]).strip())
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def remove_container(runtime: str, container: str) -> None:
    """Stop (2 s grace: a PID 1 may ignore SIGTERM) and remove."""
    subprocess.run(
        [runtime, "rm", "--force", "--time", "2", container],
        capture_output=True,
        timeout=60,
    )


# --- the offline base image ----------------------------------------------------------------


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
    found = sorted(cache_dir.glob("uv-*.whl"))
    if not found:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--platform",
                "manylinux2014_x86_64",
                "--dest",
                str(cache_dir),
                "uv>=0.13.4,<1",
            ],
            timeout=300,
        )
        found = sorted(cache_dir.glob("uv-*.whl"))
    if not found:
        raise ContainerError(f"could not download the uv wheel into {cache_dir}")
    return found[-1]


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
    for relative in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "usr/share/locale"):  # fmt: skip
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
            _run(
                [
                    "debootstrap",
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
    _run(
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


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def cache_home() -> Path:
    return Path(os.environ.get("MAAS_CACHE_DIR", Path.home() / ".cache" / "maas"))
