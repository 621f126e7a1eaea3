"""The `kubernetes` deploy target: the validated image as a Deployment + Service manifest."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maas.clock import utc_timestamp
from maas.files import write_text_atomic
from maas.operate.deployment import (
    STATE_FILES,
    Deployment,
    read_deployment,
    read_deployments,
    remove_state,
    write_state,
)
from maas.serving.guard import TOKEN_ENV

log = logging.getLogger(__name__)

# `kubectl create secret generic maas-api-token --from-literal=token=...` turns auth on.
TOKEN_SECRET = "maas-api-token"


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

    def current(self, model: str) -> Deployment | None:
        return read_deployment(self.state_dir, self.name, model)

    def deploy(self, model: str, version: str, image: str, image_id: str) -> Deployment:
        path = render_kubernetes(
            model, version, image, self.folder, replicas=self.replicas, image_id=image_id
        )
        deployment = Deployment(
            model=model, version=version, image=image, image_id=image_id,
            container=f"maas-{model.lower()}",
            port=3000, endpoint=path.resolve().as_uri(),
            deployed_at=utc_timestamp(),
        )  # fmt: skip
        write_state(self.state_file, deployment)
        log.info("%s v%s rendered to %s: kubectl apply -f %s", model, version, path, path)
        return deployment

    def problem(self, deployment: Deployment, digests: Mapping[str, str]) -> str | None:
        """The rendered manifest is there (what runs in the cluster is the cluster's to say)."""
        path = self.folder / f"maas-{deployment.model.lower()}.yaml"
        return None if path.is_file() else f"the manifest {path} is gone"

    def describe(self, deployment: Deployment) -> dict[str, Any]:
        return {}  # the cluster's service answers there, not here

    def publish(self, model: str, entry: dict[str, Any] | None) -> None:
        pass  # the catalog is the local gateway's; a cluster's is its Ingress

    def catalog(self) -> dict[str, dict[str, Any]]:
        return {}

    def remove_orphans(self, model: str) -> list[str]:
        return []  # one manifest per model, rewritten in place

    def stop(self, model: str) -> None:
        remove_state(self.state_file, model)

    def stop_all(self) -> list[str]:
        models = sorted(read_deployments(self.state_dir, self.name))
        self.state_file.unlink(missing_ok=True)
        return models


def render_kubernetes(
    model: str,
    version: str,
    image: str,
    folder: Path,
    port: int = 3000,
    replicas: int = 2,
    image_id: str = "",
) -> Path:
    """A Deployment (readiness on /readyz, liveness on /livez) and a Service for the image.

    The cluster pulls `image` by name from its registry; the ID of the image that passed
    infra-validation is the pod annotation `maas/image-id`, for an admission policy or a
    person to compare with what the registry serves under that name."""
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
                "metadata": {"labels": labels, "annotations": {"maas/image-id": image_id}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{
                        "name": "service",
                        "image": image,
                        "ports": [{"containerPort": port}],
                        # bearer auth as for local containers: the token by reference only
                        "env": [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                            "name": TOKEN_SECRET, "key": "token", "optional": True}}}],
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
    path = folder / f"{name}.yaml"
    write_text_atomic(path, yaml.safe_dump_all([deployment, service], sort_keys=False))
    return path
