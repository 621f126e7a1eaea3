"""OCI images and containers through the docker / podman / buildah command lines.

BentoML builds the images (`bentoml.container.build`); this module picks the backend and
inspects, runs, waits for and stops containers. Only the standard library is imported, so the
controller and the CLI can use it without loading BentoML.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maas.errors import ContainerError
from maas.net import ProcessExited, wait_for_http

log = logging.getLogger(__name__)

BACKENDS = ("docker", "podman", "buildah")
CA_BUNDLE_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"
# What a serving container writes besides a mounted volume: BentoML's home (at start it makes
# its store folders there, then Prometheus files; /home/bentoml/ in its images, which also
# holds the Bento) moved to BENTOML_HOME below, and its sockets and temporary files in /tmp.
# WRITABLE is a tmpfs; the rest of the image is read-only.
WRITABLE = ("/tmp",)
BENTOML_HOME = "/tmp/bentoml"
TMPFS_OPTIONS = "rw,nosuid,nodev,noexec,size=256m"


@dataclass(frozen=True)
class Limits:
    """A serving container's resources (deploy.container_*): None leaves one unlimited."""

    memory_mb: int | None = 2048
    cpus: float | None = 2.0
    pids: int | None = 1024

    def arguments(self) -> list[str]:
        out = []
        if self.memory_mb is not None:
            out += ["--memory", f"{self.memory_mb}m"]
        if self.cpus is not None:
            out += ["--cpus", f"{self.cpus:g}"]
        if self.pids is not None:
            out += ["--pids-limit", str(self.pids)]
        return out


def hardening(runtime: str, limits: Limits) -> list[str]:
    """Run arguments that confine a serving container: a read-only root file system with a
    tmpfs for each WRITABLE path (BentoML's home in one), no capabilities, no privilege gain
    (setuid), and `limits`."""
    command = ["--read-only", "--cap-drop=ALL", "--security-opt", "no-new-privileges"]
    command += ["--env", f"BENTOML_HOME={BENTOML_HOME}"]
    if Path(runtime).name == "podman":
        command += ["--read-only-tmpfs=false"]  # podman's own /tmp, /run...: WRITABLE instead
    for path in WRITABLE:
        command += ["--tmpfs", f"{path}:{TMPFS_OPTIONS}"]
    return [*command, *limits.arguments()]


@dataclass(frozen=True)
class ImageInfo:
    name: str
    id: str
    size_bytes: int
    labels: dict[str, str]


def run_tool(command: list[str], timeout: float = 60, check: bool = True) -> str:
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


_WORKING: set[str] = set()  # binaries (resolved paths) whose probe passed in this process


def backend_problem(backend: str) -> str | None:
    """None when `backend` can build images here, else why not (checked for real, not assumed:
    a docker CLI without a running daemon does not count). A passing probe is remembered for
    the process (a controller pass packages and deploys without probing again); a failing one
    is tried again next time (the user may fix it meanwhile)."""
    binary = shutil.which(backend)
    if binary is None:
        return f"{backend} is not installed"
    if binary in _WORKING:
        return None
    probe = {"docker": ["info"], "podman": ["info"], "buildah": ["version"]}[backend]
    try:
        done = subprocess.run([binary, *probe], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"`{backend} {probe[0]}` did not answer in 30s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"`{backend} {probe[0]}` failed: {lines[-1] if lines else done.returncode}"
    _WORKING.add(binary)
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
    out = run_tool([runtime, "image", "inspect", "--format", "{{.Config.User}}", image])
    return out.strip()


def run_container(
    runtime: str,
    image: str,
    name: str,
    port: int,
    env: dict[str, str] | None = None,
    network: str = "host",
    pass_env: list[str] | None = None,
    restart: str | None = None,
    volumes: dict[Path, str] | None = None,
    limits: Limits | None = None,
) -> str:
    """Start `image` detached, answering on 127.0.0.1:`port` only; returns the container id.

    The container is confined (`hardening`: read-only, no capabilities, no privilege gain,
    `limits` or the defaults). On the host network the service binds 127.0.0.1
    (`BENTOML_HOST`): without it, it listened on every interface, around the gateway.

    `pass_env`: variable names handed over from this process's environment (`--env NAME`),
    so secret values never appear on a command line. `restart`: the runtime's restart policy
    (`on-failure`: a crashed or OOM-killed service comes back by itself). `volumes`: host
    folder -> path in the container, writable by the image's (non-root) user: podman maps the
    folder's owner to it (`:U`); Docker shares it through its group (setgid 2770).
    `limits`: the container's resources (None: `Limits()`'s defaults)."""
    run_tool([runtime, "rm", "--force", "--ignore", name], check=False)
    command = [runtime, "run", "--detach", "--init", "--name", name]
    command += hardening(runtime, limits or Limits())
    if restart:
        command += ["--restart", restart]
    if network == "host":
        command += ["--network", "host", "--env", f"PORT={port}", "--env", "BENTOML_HOST=127.0.0.1"]
    else:  # a bridge network publishes the service's default port on loopback
        command += ["--publish", f"127.0.0.1:{port}:3000"]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    for key in pass_env or []:
        command += ["--env", key]
    for folder, inside in (volumes or {}).items():
        folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        if Path(runtime).name == "podman":
            command += ["--volume", f"{folder.resolve()}:{inside}:U"]
        else:  # Docker has no :U: the service's user joins the folder's group, not everyone
            folder.chmod(0o2770)  # setgid: the files it writes stay in that group
            command += ["--group-add", str(folder.stat().st_gid)]
            command += ["--volume", f"{folder.resolve()}:{inside}"]
    return run_tool([*command, image], timeout=120).strip()


def list_containers(runtime: str, name_prefix: str) -> list[str]:
    """Names of containers (running or not) whose name starts with `name_prefix`."""
    out = run_tool([runtime, "ps", "--all", "--format", "{{.Names}}"], check=False)
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
    pid = int(run_tool([runtime, "inspect", "--format", "{{.State.Pid}}", container]).strip())
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


def remove_container(runtime: str, container: str, timeout_s: float = 60) -> bool:
    """Stop (2 s grace: a PID 1 may ignore SIGTERM) and remove; True when it is gone.

    A clean-up step, so it never raises: it runs in `except` blocks, where an error of its own
    (a hung or missing runtime) would replace the error being handled, or a stop signal being
    propagated, with its own. What it could not remove is logged, and the orphan sweep
    (`maas.operate.controller.sweep_orphans`) removes it later."""
    try:
        done = subprocess.run(
            [runtime, "rm", "--force", "--time", "2", container],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("could not remove container %s: %s", container, error)
        return False
    gone = done.returncode == 0 or "no such container" in done.stderr.lower()
    if not gone:
        log.warning("could not remove container %s: %s", container, done.stderr.strip()[-300:])
    return gone


def wait_ready(base_url: str, timeout_s: float, alive: Callable[[], bool] | None = None) -> bool:
    """True once the service at `base_url` answers /readyz (ready means a warm model); False at
    the timeout. Raises ContainerError when `alive()` says the container exited first."""
    try:
        return wait_for_http(f"{base_url}/readyz", timeout_s, alive=alive, interval_s=0.2)
    except ProcessExited:
        raise ContainerError("the container exited before it was ready") from None
