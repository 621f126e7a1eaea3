"""The `kubernetes` deploy target: the validated image as a Deployment + Service manifest."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from maas.clock import utc_timestamp
from maas.config import MonitoringParams
from maas.errors import DeployError
from maas.files import write_text_atomic
from maas.naming import named
from maas.operate.deployment import (
    STATE_FILES,
    Deployment,
    read_deployment,
    read_deployments,
    remove_state,
    write_state,
)
from maas.release.containers import BENTOML_HOME, WRITABLE, Limits
from maas.serving import prediction_log
from maas.serving.guard import TOKEN_ENV

log = logging.getLogger(__name__)

# `kubectl create secret generic maas-api-token --from-literal=token=...` turns auth on.
TOKEN_SECRET = "maas-api-token"
INGRESS_FILE = "maas-ingress.yaml"
KUBERNETES_VERSION = "1.33.0"  # the schemas every manifest is checked against


class KubernetesTarget:
    """Renders the image's Deployment + Service into a folder, for `kubectl apply -f` or a
    GitOps repository (Argo CD, Flux). The rolling update (maxUnavailable 0, readiness on
    /readyz) keeps the old pods serving until new ones are ready. Nothing runs here: the
    image was infra-validated by packaging; the cluster pulls it from the registry it is
    pushed to."""

    name = "kubernetes"

    def __init__(
        self,
        state_dir: Path,
        folder: Path,
        replicas: int = 2,
        default: str | None = None,
        monitoring: MonitoringParams | None = None,
        *,
        log_keys: Sequence[str] = (),
        limits: Limits | None = None,
    ) -> None:
        self.state_dir, self.folder, self.replicas = state_dir, folder, replicas
        self.log_keys = tuple(log_keys)  # logged beside the request's fields
        self.limits = limits or Limits()  # each pod's resources
        self.default = default  # the model the Ingress's default backend is
        self.monitoring = monitoring  # with .log: the pods log predictions to a volume
        self.state_file = state_dir / STATE_FILES["kubernetes"]

    def current(self, model: str) -> Deployment | None:
        return read_deployment(self.state_dir, self.name, model)

    def deploy(self, model: str, version: str, image: str, image_id: str) -> Deployment:
        path = render_kubernetes(
            model,
            version,
            image,
            self.folder,
            replicas=self.replicas,
            image_id=image_id,
            log=self.monitoring if _logs(self.monitoring) else None,
            log_keys=self.log_keys,
            limits=self.limits,
        )
        deployment = Deployment(
            model=model,
            version=version,
            image=image,
            image_id=image_id,
            container=named("maas", model),
            port=3000,
            endpoint=path.resolve().as_uri(),
            deployed_at=utc_timestamp(),
        )
        write_state(self.state_file, deployment)
        self._route()
        log.info("%s v%s rendered to %s: kubectl apply -f %s", model, version, path, self.folder)
        return deployment

    def _route(self) -> None:
        """The one Ingress in front of every model rendered here (none: no file)."""
        models = sorted(read_deployments(self.state_dir, self.name))
        path = self.folder / INGRESS_FILE
        if not models:
            path.unlink(missing_ok=True)
            return
        ingress = render_ingress(models, self.default if self.default in models else None)
        write_text_atomic(path, yaml.safe_dump(checked([ingress])[0], sort_keys=False))

    def problem(self, deployment: Deployment, digests: Mapping[str, str]) -> str | None:
        """The rendered manifest is there (what runs in the cluster is the cluster's to say)."""
        path = self.folder / f"{named('maas', deployment.model)}.yaml"
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
        (self.folder / f"{named('maas', model)}.yaml").unlink(missing_ok=True)
        self._route()

    def stop_all(self) -> list[str]:
        models = sorted(read_deployments(self.state_dir, self.name))
        for model in models:
            self.stop(model)
        return models


def render_kubernetes(
    model: str,
    version: str,
    image: str,
    folder: Path,
    port: int = 3000,
    replicas: int = 2,
    image_id: str = "",
    log: MonitoringParams | None = None,
    log_keys: Sequence[str] = (),
    limits: Limits | None = None,
) -> Path:
    """A Deployment (readiness on /readyz, liveness on /livez) and a Service for the image,
    and with `log` the PersistentVolumeClaim (`log.kubernetes_storage_class`) its pods write
    their prediction logs to.

    The cluster pulls `image` by name from its registry; the ID of the image that passed
    infra-validation is the pod annotation `maas/image-id`, for an admission policy or a
    person to compare with what the registry serves under that name.

    The pods are confined as local containers are (`maas.release.containers.hardening`): a
    read-only root file system with an emptyDir for each path the service writes, no
    capabilities, no privilege escalation, the runtime's default seccomp profile, and
    resource requests and limits (`limits`, deploy.container_*)."""
    name = named("maas", model)
    env: list[dict[str, Any]] = [
        {
            "name": TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token", "optional": True}},
        },
        {"name": "BENTOML_HOME", "value": BENTOML_HOME},  # in an emptyDir: the root is read-only
    ]
    logged: dict[str, Any] = {}
    claim = None
    if log is not None:  # every pod of every version writes its own files into one claim
        settings = prediction_log.environment(
            log.log_max_bytes,
            log.log_backups,
            keys=log_keys,
            redact=log.redact,
            retention_days=log.retention_days,
        )
        env += [{"name": key, "value": value} for key, value in settings.items()]
        logged = {"volumeMounts": [{"name": "predictions", "mountPath": prediction_log.MOUNT}]}
        claim = prediction_claim(f"{name}-predictions", log)
    scratch = [f"scratch-{number}" for number in range(len(WRITABLE))]
    mounts = [{"name": n, "mountPath": path} for n, path in zip(scratch, WRITABLE, strict=True)]
    mounts += logged.get("volumeMounts", [])
    volumes: list[dict[str, Any]] = [
        {"name": n, "emptyDir": {"sizeLimit": "256Mi"}} for n in scratch
    ]
    if claim:
        volumes.append(
            {
                "name": "predictions",
                "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
            }
        )
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
                "metadata": {"labels": labels, "annotations": scrape_annotations(image_id, port)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "service",
                            "image": image,
                            "ports": [{"containerPort": port}],
                            # bearer auth as for local containers: the token by reference only
                            "env": env,
                            "volumeMounts": mounts,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                                "runAsNonRoot": True,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": port},
                                "periodSeconds": 2,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/livez", "port": port},
                                "initialDelaySeconds": 10,
                            },
                            "resources": pod_resources(limits or Limits()),
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": port}]},
    }
    path = folder / f"{name}.yaml"
    documents = [deployment, service, *([claim] if claim else [])]
    write_text_atomic(path, yaml.safe_dump_all(checked(documents), sort_keys=False))
    return path


def scrape_annotations(image_id: str, port: int) -> dict[str, str]:
    """The pod's annotations: the image that passed infra-validation, and where Prometheus's
    usual `kubernetes_sd_configs` relabelling (prometheus.io/*) finds the service's BentoML
    metrics; the pod labels maas/model and maas/version name the model (docs/operations.md)."""
    return {
        "maas/image-id": image_id,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def pod_resources(limits: Limits) -> dict[str, dict[str, str]]:
    """Requests (what the scheduler reserves) and limits (`limits`; a pod's process count is
    the kubelet's `podPidsLimit`, not the manifest's)."""
    memory = limits.memory_mb
    requests = {"cpu": "500m", "memory": f"{min(512, memory or 512)}Mi"}
    if limits.cpus is not None and limits.cpus < 0.5:
        requests["cpu"] = f"{limits.cpus:g}"
    capped: dict[str, str] = {}
    if memory is not None:
        capped["memory"] = f"{memory}Mi"
    if limits.cpus is not None:
        capped["cpu"] = f"{limits.cpus:g}"
    return {"requests": requests, **({"limits": capped} if capped else {})}


def _logs(monitoring: MonitoringParams | None) -> bool:
    """The pods log predictions: the log is on and there is a storage class to claim from."""
    return bool(monitoring and monitoring.log and monitoring.kubernetes_storage_class)


def prediction_claim(name: str, log: MonitoringParams) -> dict[str, Any]:
    """A ReadWriteMany claim (every pod of every version writes its own files into it) of
    the configured class and a fixed size: a claim cannot shrink, so the size does not follow
    replicas or retention settings."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": {"app": name.removesuffix("-predictions")}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": log.kubernetes_storage_class,
            "resources": {"requests": {"storage": log.kubernetes_log_size}},
        },
    }


def render_ingress(models: list[str], default: str | None) -> dict[str, Any]:
    """One Ingress with the local gateway's paths: `/models/<name>/...` reaches that model's
    Service with the prefix removed (ingress-nginx's regex paths and rewrite-target), and the
    default task's model is the default backend (`/predict`)."""
    paths = [
        {
            "path": f"/models/{model}(/|$)(.*)",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": named("maas", model), "port": {"number": 80}}},
        }
        for model in models
    ]
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": [{"http": {"paths": paths}}]}
    if default is not None:
        spec["defaultBackend"] = {
            "service": {"name": named("maas", default), "port": {"number": 80}}
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "maas-models",
            "annotations": {
                "nginx.ingress.kubernetes.io/use-regex": "true",
                "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
            },
        },
        "spec": spec,
    }


def checked(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents, each valid against Kubernetes KUBERNETES_VERSION's schemas (strict: an
    unknown field is an error, as `kubectl apply --validate=strict`); else a DeployError
    naming the document and the problem, and nothing is written."""
    import kubernetes_validate

    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            raise DeployError(
                f"{document.get('kind')} {document.get('metadata', {}).get('name')} is not valid "
                f"Kubernetes {KUBERNETES_VERSION} at {where or 'the top'}: {error.message}"
            ) from None
    return documents
