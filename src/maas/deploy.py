"""Deploy targets: where a packaged, validated image becomes the running service.

`local` (default): containers on this machine behind one stable address (a TCP forwarder,
`maas.proxy`). A new version starts beside the old one on a free port, must be ready and
answer with its version, then the stable address switches to it and the old one is removed;
if anything fails before the switch, the old one keeps serving. `kubernetes`: renders a
Deployment (readiness probe on /readyz) and a Service for the image into a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maas import containers

log = logging.getLogger(__name__)
TOKEN_ENV = "MAAS_API_TOKEN"  # the service's bearer token (maas.service.TOKEN_ENV)


class DeployError(RuntimeError):
    """A version could not be deployed; the previous one keeps serving."""


@dataclass(frozen=True)
class Deployment:
    model: str
    version: str
    image: str
    container: str
    port: int
    endpoint: str
    deployed_at: str


STATE_FILE = "local.json"
STATE_FILES = {"local": STATE_FILE, "kubernetes": "kubernetes.json"}


def read_deployment(state_dir: Path, target: str = "local") -> Deployment | None:
    """What a target serves, from its state file (None before the first deploy)."""
    try:
        return Deployment(**json.loads((state_dir / STATE_FILES[target]).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def write_state(path: Path, deployment: Deployment) -> None:
    """Atomically: a reader (the forwarder, `maas status`) never sees half a file, and a
    failed write (disk full, read-only) leaves the previous state as it was."""
    partial = path.with_suffix(".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w") as handle:
            handle.write(json.dumps(asdict(deployment), indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise DeployError(
            f"cannot write the deploy state {path}: {error.strerror} (the previous state stands)"
        ) from error


def _answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalTarget:
    """Containers on this machine behind a stable address (default 127.0.0.1:3000)."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        address: str,
        runtime: str,
        network: str = "host",
        ready_timeout_s: float = 120,
        drain_s: float = 2.0,
    ) -> None:
        self.state_dir = state_dir
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.runtime, self.network = runtime, network
        self.ready_timeout_s, self.drain_s = ready_timeout_s, drain_s
        self.state_file = state_dir / STATE_FILE
        self.endpoint = f"http://{self.host}:{self.port}"

    def current(self) -> Deployment | None:
        return read_deployment(self.state_dir)

    def ensure_proxy(self) -> None:
        """Start the stable address's forwarder unless it already runs."""
        pid_file = self.state_dir / "proxy.pid"
        if _answers(self.host, self.port):
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.state_dir / "proxy.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "maas.proxy", "--listen", f"{self.host}:{self.port}",
             "--state", str(self.state_file)],
            stdout=log_file, stderr=log_file, start_new_session=True,
        )  # fmt: skip
        pid_file.write_text(str(process.pid))
        if not containers.wait_until(lambda: _answers(self.host, self.port), 15, 0.1):
            raise DeployError(
                f"the stable address {self.host}:{self.port} did not open "
                f"(see {self.state_dir / 'proxy.log'}; is the port taken?)"
            )

    def deploy(self, model: str, version: str, image: str) -> Deployment:
        """Start `image` beside the current one, check it, switch, remove the old one."""
        from maas.packaging import free_port, wait_ready

        self.ensure_proxy()
        port = free_port()
        name = f"{self.prefix(model)}v{version}-{port}"
        secrets = [TOKEN_ENV] if os.environ.get(TOKEN_ENV) else []  # bearer auth, by name
        containers.run_container(
            self.runtime, image, name, port, network=self.network, pass_env=secrets
        )
        container = name  # names, not ids: orphans are found by name prefix
        base_url = f"http://127.0.0.1:{port}"
        try:
            alive = lambda: containers.container_running(self.runtime, container)  # noqa: E731
            if not wait_ready(base_url, self.ready_timeout_s, alive=alive):
                raise DeployError(f"{image} not ready within {self.ready_timeout_s:.0f}s")
            served = _served_version(base_url)
            if served != version:
                raise DeployError(f"{image} serves model_version {served!r}, not {version}")
        except Exception as error:
            logs = containers.container_logs(self.runtime, container)
            containers.remove_container(self.runtime, container)
            raise DeployError(f"{error}; container log tail: {logs[-300:]}") from None
        previous = self.current()
        deployment = Deployment(
            model=model,
            version=version,
            image=image,
            container=container,
            port=port,
            endpoint=self.endpoint,
            deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        try:
            self._write_state(deployment)  # the switch: new connections now reach `container`
        except DeployError:
            containers.remove_container(self.runtime, container)  # the old one keeps serving
            raise
        if previous is not None and previous.container != container:
            time.sleep(self.drain_s)  # requests already on the old container finish
            containers.remove_container(self.runtime, previous.container)
        log.info("%s v%s serves at %s (container %s)", model, version, self.endpoint, name)
        return deployment

    def _write_state(self, deployment: Deployment) -> None:
        write_state(self.state_file, deployment)

    def prefix(self, model: str) -> str:
        """Container names of this target: scoped by its state folder, so two projects on one
        machine (or a test beside a user's deployment) never remove each other's containers."""
        scope = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        return f"maas-serve-{model.lower()}-{scope}-"

    def remove_orphans(self, model: str) -> list[str]:
        """Remove this model's containers that do not serve: left by a controller killed
        between a switch and the old container's removal, or during a failed start."""
        current = self.current()
        keep = current.container if current else None
        orphans = [
            name
            for name in containers.list_containers(self.runtime, self.prefix(model))
            if name != keep
        ]
        for name in orphans:
            containers.remove_container(self.runtime, name)
        return orphans

    def stop(self) -> None:
        """Remove the serving container and the forwarder (tests, `maas undeploy`)."""
        current = self.current()
        if current is not None:
            containers.remove_container(self.runtime, current.container)
            self.state_file.unlink(missing_ok=True)
            self.remove_orphans(current.model)
        pid_file = self.state_dir / "proxy.pid"
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink(missing_ok=True)


def auth_headers() -> dict[str, str]:
    """The bearer token the services were started with, if any ($MAAS_API_TOKEN)."""
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _served_version(base_url: str) -> str | None:
    import httpx

    response = httpx.post(f"{base_url}/metadata", json={}, headers=auth_headers(), timeout=10)
    if response.status_code != 200:
        return None
    version: Any = response.json().get("model_version")
    return str(version) if version is not None else None


class KubernetesTarget:
    """Renders the image's Deployment + Service into a folder, for `kubectl apply -f` or a
    GitOps repository (Argo CD, Flux). The rolling update (maxUnavailable 0, readiness on
    /readyz) keeps the old pods serving until new ones are ready. Nothing runs here: the
    image was infra-validated by packaging; the cluster pulls it from the registry it is
    pushed to."""

    name = "kubernetes"

    def __init__(self, state_dir: Path, folder: Path, replicas: int = 2) -> None:
        self.state_dir, self.folder, self.replicas = state_dir, folder, replicas
        self.state_file = state_dir / STATE_FILES["kubernetes"]

    def current(self) -> Deployment | None:
        return read_deployment(self.state_dir, "kubernetes")

    def deploy(self, model: str, version: str, image: str) -> Deployment:
        path = render_kubernetes(model, version, image, self.folder, replicas=self.replicas)
        deployment = Deployment(
            model=model, version=version, image=image, container=f"maas-{model.lower()}",
            port=3000, endpoint=path.resolve().as_uri(),
            deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        write_state(self.state_file, deployment)
        log.info("%s v%s rendered to %s: kubectl apply -f %s", model, version, path, path)
        return deployment

    def remove_orphans(self, model: str) -> list[str]:
        return []  # one manifest per model, rewritten in place

    def stop(self) -> None:
        self.state_file.unlink(missing_ok=True)


def render_kubernetes(
    model: str, version: str, image: str, folder: Path, port: int = 3000, replicas: int = 2
) -> Path:
    """A Deployment (readiness on /readyz, liveness on /livez) and a Service for the image."""
    import yaml

    name = f"maas-{model.lower()}"
    labels = {"app": name, "maas/model": model, "maas/version": str(version)}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{
                        "name": "service",
                        "image": image,
                        "ports": [{"containerPort": port}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port},
                                           "periodSeconds": 2},
                        "livenessProbe": {"httpGet": {"path": "/livez", "port": port},
                                          "initialDelaySeconds": 10},
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    }],
                },
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": port}]},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    partial = path.with_suffix(".partial")
    partial.write_text(yaml.safe_dump_all([deployment, service], sort_keys=False))
    os.replace(partial, path)
    return path
