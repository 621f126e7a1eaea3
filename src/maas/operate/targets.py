"""Deploy targets: where a packaged, validated image becomes the running service.

`local` (default): containers on this machine behind one stable address (an HAProxy gateway,
`maas.operate.gateway`). A new version starts beside the old one on a free port, must be ready
and answer with its version, then the stable address switches to it and the old one is removed;
if anything fails before the switch, the old one keeps serving. `kubernetes`
(`maas.operate.kubernetes`): a Deployment and a Service rendered into a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from maas.clock import utc_timestamp
from maas.config import MonitoringParams, Params
from maas.config.sections import GatewayParams
from maas.errors import DeployError
from maas.naming import named
from maas.net import free_port, parse_address
from maas.operate.deployment import (
    STATE_FILE,
    Deployment,
    read_deployment,
    read_deployments,
    remove_state,
    write_state,
)
from maas.operate.gateway import Gateway
from maas.operate.kubernetes import KubernetesTarget
from maas.release import containers
from maas.serving import prediction_log
from maas.serving.guard import TOKEN_ENV

log = logging.getLogger(__name__)


class Target(Protocol):
    name: str

    def current(self, model: str) -> Deployment | None: ...
    def deploy(self, model: str, version: str, image: str, image_id: str) -> Deployment: ...
    def problem(self, deployment: Deployment, digests: Mapping[str, str]) -> str | None: ...
    def describe(self, deployment: Deployment) -> dict[str, Any]: ...
    def publish(self, model: str, entry: dict[str, Any] | None) -> None: ...
    def catalog(self) -> dict[str, dict[str, Any]]: ...
    def remove_orphans(self, model: str) -> list[str]: ...
    def stop(self, model: str) -> None: ...
    def stop_all(self) -> list[str]: ...


class LocalTarget:
    """Containers on this machine behind one stable address (default 127.0.0.1:3000): each
    model at /models/<name>/..., the default task's model (`default`) also at /."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        address: str,
        runtime: str,
        network: str = "host",
        ready_timeout_s: float = 120,
        drain_s: float = 2.0,
        default: str | None = None,
        replicas: int = 1,
        monitoring: MonitoringParams | None = None,
        log_keys: Sequence[str] = (),
        gateway: GatewayParams | None = None,
        limits: containers.Limits | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.monitoring = monitoring  # with .log: each container logs its predictions
        self.log_keys = tuple(log_keys)  # logged beside the request's fields (Params.logged_keys)
        self.limits = limits  # each container's resources (None: containers.Limits())
        self.host, self.port = parse_address(address)
        self.runtime, self.network = runtime, network
        self.ready_timeout_s, self.drain_s = ready_timeout_s, drain_s
        self.replicas = replicas  # containers per model, balanced by the gateway
        self.state_file = state_dir / STATE_FILE
        self.endpoint = f"http://{self.host}:{self.port}"
        self.gateway = Gateway(state_dir, self.host, self.port, default, limits=gateway)

    def current(self, model: str) -> Deployment | None:
        return read_deployment(self.state_dir, self.name, model)

    def model_endpoint(self, model: str) -> str:
        return f"{self.endpoint}/models/{model}"

    def gateway_running(self) -> bool:
        return self.gateway.running()

    def ensure_gateway(self) -> None:
        """Start the stable address's gateway unless it runs, serving what its table says."""
        self.gateway.ensure()

    def deploy(self, model: str, version: str, image: str, image_id: str) -> Deployment:
        """Start the image's replicas beside the current ones, check each, switch, remove
        the old ones.

        The containers run `image_id`, the image that passed infra-validation, not whatever
        the mutable tag `image` names by now (a rebuild, a pull, a person retagging)."""
        self.ensure_gateway()
        started: list[tuple[str, int]] = []
        try:
            for _ in range(self.replicas):
                started.append(self._start(model, version, image, image_id))
        except BaseException:  # one failed, or we are stopping: the old ones keep serving
            for container, _ in started:
                containers.remove_container(self.runtime, container)
            raise
        names, ports = [c for c, _ in started], [p for _, p in started]
        previous = self.current(model)
        deployment = Deployment(
            model=model,
            version=version,
            image=image,
            image_id=image_id,
            container=names[0],
            port=ports[0],
            endpoint=self.model_endpoint(model),
            deployed_at=utc_timestamp(),
            containers=names,
            ports=ports,
        )
        try:
            self.gateway.switch(model, ports, version)  # new requests now reach `names`
        except BaseException:  # refused, or we are stopping: the old ones keep serving
            self._remove(names)
            raise
        try:
            self._write_state(deployment)
        except DeployError:  # unrecorded: back to the old ones, which still run (or none)
            try:
                if previous is not None:  # stands even where the disk is full
                    self.gateway.switch(model, previous.all_ports, previous.version, restoring=True)
                else:
                    self.gateway.remove(model)
            except DeployError as error:  # the new ones still serve: they stay
                log.warning("%s: v%s still serves, unrecorded: %s", model, version, error)
                raise
            self._remove(names)
            raise
        except BaseException:  # stopped right after the switch: what serves is recorded
            with contextlib.suppress(DeployError):
                self._write_state(deployment)
            raise
        if previous is not None:
            old = [c for c in previous.all_containers if c not in names]
            time.sleep(self.drain_s if old else 0)  # requests already on the old ones finish
            self._remove(old)
        log.info("%s v%s serves at %s (%s)", model, version, deployment.endpoint, ", ".join(names))
        return deployment

    def _prediction_log(self, model: str) -> tuple[dict[str, str], dict[Path, str]]:
        """The container's prediction log: the model's folder under monitoring.log_dir,
        mounted where the service writes it (shared by the model's replicas and versions)."""
        settings = self.monitoring
        if settings is None or not settings.log:
            return {}, {}
        env = prediction_log.environment(
            settings.log_max_bytes,
            settings.log_backups,
            keys=self.log_keys,
            redact=settings.redact,
            retention_days=settings.retention_days,
        )
        return env, {settings.log_dir.resolve() / model: prediction_log.MOUNT}

    def _start(self, model: str, version: str, image: str, image_id: str) -> tuple[str, int]:
        """One replica, ready and answering with `version`: its container name and port."""
        port = free_port()
        name = f"{self.prefix(model)}v{version}-{port}"
        secrets = [TOKEN_ENV] if os.environ.get(TOKEN_ENV) else []  # bearer auth, by name
        env, volumes = self._prediction_log(model)
        try:
            containers.run_container(
                self.runtime,
                image_id,
                name,
                port,
                network=self.network,
                pass_env=secrets,
                restart="on-failure",
                env=env,
                volumes=volumes,
                limits=self.limits,
            )
        except BaseException:  # created, then failed to start, or we are stopping: leave nothing
            containers.remove_container(self.runtime, name)
            raise
        base_url = f"http://127.0.0.1:{port}"  # names, not ids: orphans are found by prefix
        try:
            alive = lambda: containers.container_running(self.runtime, name)  # noqa: E731
            if not containers.wait_ready(base_url, self.ready_timeout_s, alive=alive):
                raise DeployError(f"{image} not ready within {self.ready_timeout_s:.0f}s")
            served = _served_version(base_url)
            if served != version:
                raise DeployError(f"{image} serves model_version {served!r}, not {version}")
        except Exception as error:
            logs = containers.container_logs(self.runtime, name)
            containers.remove_container(self.runtime, name)
            raise DeployError(f"{error}; container log tail: {logs[-300:]}") from None
        except BaseException:  # stopped (SIGTERM, Ctrl-C) before the switch: the old one serves
            containers.remove_container(self.runtime, name)
            raise
        return name, port

    def _remove(self, names: list[str]) -> None:
        for name in names:
            containers.remove_container(self.runtime, name)

    def problem(self, deployment: Deployment, digests: Mapping[str, str]) -> str | None:
        """Why the recorded deployment is not what answers at the stable address (None: it
        is): the gateway or the container is gone (a reboot, an OOM kill), or another model
        answers (other artifacts under the same version number after a registry rebuild)."""
        if not self.gateway_running():  # killed, or a reboot: started again from its table
            try:
                self.ensure_gateway()
            except DeployError as error:
                return f"the stable address's gateway is not running and did not start: {error}"
            log.warning(
                "the gateway was not running: started again from %s", self.gateway.table_file
            )
        if deployment.endpoint != self.model_endpoint(deployment.model):
            return f"recorded at {deployment.endpoint}, not at the gateway's model path"
        try:  # a healthy pass costs one local HTTP call; the container is asked only if not
            served = served_metadata(deployment.endpoint)
        except Exception as error:
            if not containers.container_running(self.runtime, deployment.container):
                return f"container {deployment.container} is not running"
            return f"{deployment.endpoint} does not answer /metadata: {error}"
        if str(served.get("model_version")) != deployment.version:
            return (
                f"{deployment.endpoint} serves v{served.get('model_version')}, "
                f"not v{deployment.version}"
            )
        if len(deployment.all_containers) > 1:  # the gateway hides a dead replica: ask
            running = lambda c: containers.container_running(self.runtime, c)  # noqa: E731
            gone = [c for c in deployment.all_containers if not running(c)]
            if gone:
                return f"container {gone[0]} is not running"
        if digests and served.get("sha256") != dict(digests):
            return (
                f"{deployment.endpoint} serves other artifacts than the registered "
                f"v{deployment.version} (sha256 differ: a rebuilt registry reused the version "
                "number?)"
            )
        return None

    def _write_state(self, deployment: Deployment) -> None:
        write_state(self.state_file, deployment)

    def prefix(self, model: str) -> str:
        """Container names of this target: scoped by its state folder, so two projects on one
        machine (or a test beside a user's deployment) never remove each other's containers."""
        scope = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        return f"{named('maas-serve', model)}-{scope}-"

    def remove_orphans(self, model: str) -> list[str]:
        """Remove this model's containers that do not serve: left by a controller killed
        between a switch and the old container's removal, or during a failed start."""
        current = self.current(model)
        keep = current.all_containers if current else []
        route = self.gateway.table().routes.get(model)
        routed = {f"-{port}" for port in (route.ports if route else [])}  # switched to, but
        orphans = [  # a controller killed before it recorded them: serving, so not orphans
            name
            for name in containers.list_containers(self.runtime, self.prefix(model))
            if name not in keep and not any(name.endswith(suffix) for suffix in routed)
        ]
        for name in orphans:
            containers.remove_container(self.runtime, name)
        return orphans

    def describe(self, deployment: Deployment) -> dict[str, Any]:
        """What the running service says of itself: its kind and request fields."""
        served = served_metadata(deployment.endpoint)
        request = served.get("request") or {}
        return {"kind": served.get("kind"), "inputs": request.get("fields", [])}

    def publish(self, model: str, entry: dict[str, Any] | None) -> None:
        """The model's entry in the gateway's catalog (`GET /models`); None removes it."""
        catalog = self.catalog()
        if entry is None:
            catalog.pop(model, None)
        else:
            catalog[model] = entry
        self.gateway.publish(catalog)

    def catalog(self) -> dict[str, dict[str, Any]]:
        return dict(self.gateway.table().catalog)

    def stop(self, model: str) -> None:
        """Take `model` out of service: its route, then its containers; the gateway stops
        with the last model (tests, `maas undeploy`)."""
        current = self.current(model)
        self.gateway.remove(model)
        if current is not None:
            time.sleep(self.drain_s if self.gateway.running() else 0)
            self._remove(current.all_containers)
        remove_state(self.state_file, model)
        self.remove_orphans(model)
        if not read_deployments(self.state_dir, self.name):
            self.gateway.stop()

    def stop_all(self) -> list[str]:
        """Every model out of service, and the gateway stopped; the models stopped."""
        models = sorted(read_deployments(self.state_dir, self.name))
        for model in models:
            self.stop(model)
        self.gateway.stop()
        return models


def auth_headers() -> dict[str, str]:
    """The bearer token the services were started with, if any ($MAAS_API_TOKEN)."""
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def served_metadata(base_url: str) -> dict[str, Any]:
    """The service's /metadata (version, lineage, the digests it verified at start)."""
    import httpx

    response = httpx.post(f"{base_url}/metadata", json={}, headers=auth_headers(), timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _served_version(base_url: str) -> str | None:
    try:
        version: Any = served_metadata(base_url).get("model_version")
    except Exception:
        return None
    return str(version) if version is not None else None


def container_limits(params: Params) -> containers.Limits:
    deploy = params.deploy
    return containers.Limits(
        deploy.container_memory_mb, deploy.container_cpus, deploy.container_pids_limit
    )


def make_target(params: Params) -> Target:
    """The deploy target params.deploy.target names, ready to deploy to."""
    if params.deploy.target == "kubernetes":
        deploy = params.deploy
        return KubernetesTarget(
            deploy.state_dir,
            deploy.kubernetes_dir,
            deploy.kubernetes_replicas,
            deploy.default_model,
            monitoring=params.monitoring,
            log_keys=params.logged_keys,
            limits=container_limits(params),
        )
    backend, reasons = containers.select_backend(params.packaging.backend)
    runtime = containers.runtime_for(backend) if backend else None
    if runtime is None:
        raise containers.ContainerError(f"no container runtime to deploy with: {reasons}")
    return LocalTarget(
        params.deploy.state_dir,
        params.deploy.address,
        runtime,
        network=params.packaging.network,
        ready_timeout_s=params.packaging.infra_validation.ready_timeout_s,
        default=params.deploy.default_model,
        replicas=params.deploy.replicas,
        monitoring=params.monitoring,
        log_keys=params.logged_keys,
        gateway=params.deploy.gateway,
        limits=container_limits(params),
    )


def deploy_image(target: Target, model: str, version: str, image: str, image_id: str) -> Deployment:
    """Run the validated image (`image_id`, named `image`) as the service of `version` on
    `target` (the release flow's deploy step)."""
    return target.deploy(model, version, image, image_id)
