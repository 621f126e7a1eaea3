"""What serves: a deployment record per model and target, kept in one state file per target
(`local.json`, `kubernetes.json`: model -> deployment) written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from maas.errors import DeployError
from maas.files import write_text_atomic


@dataclass(frozen=True)
class Deployment:
    model: str
    version: str
    image: str  # its name (maas-<model>:v<N>), for people and for a cluster to pull
    container: str
    port: int
    endpoint: str
    deployed_at: str
    image_id: str = ""  # the image that passed infra-validation, which is what runs (local)
    containers: list[str] = field(default_factory=list)  # every replica (local; [container])
    ports: list[int] = field(default_factory=list)

    @property
    def all_containers(self) -> list[str]:
        return list(self.containers) or [self.container]

    @property
    def all_ports(self) -> list[int]:
        return list(self.ports) or [self.port]


STATE_FILE = "local.json"
STATE_FILES = {"local": STATE_FILE, "kubernetes": "kubernetes.json"}


def read_deployments(state_dir: Path, target: str = "local") -> dict[str, Deployment]:
    """What a target serves, model by model, from its state file (empty before the first)."""
    try:
        raw = json.loads((state_dir / STATE_FILES[target]).read_text())
        if "models" not in raw:  # a state file from before many models: one deployment
            return {raw["model"]: Deployment(**raw)}
        return {name: Deployment(**entry) for name, entry in raw["models"].items()}
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return {}


def read_deployment(state_dir: Path, target: str, model: str) -> Deployment | None:
    """What a target serves for `model` (None: nothing)."""
    return read_deployments(state_dir, target).get(model)


def write_state(path: Path, deployment: Deployment) -> None:
    """Record `deployment` as what serves its model, the other models' records unchanged."""
    deployments = read_deployments(path.parent, _target(path))
    deployments[deployment.model] = deployment
    _write(path, deployments)


def remove_state(path: Path, model: str) -> None:
    """`model` no longer serves on this target."""
    deployments = read_deployments(path.parent, _target(path))
    if deployments.pop(model, None) is not None:
        _write(path, deployments)


def _target(path: Path) -> str:
    return next((name for name, file in STATE_FILES.items() if file == path.name), "local")


def _write(path: Path, deployments: dict[str, Deployment]) -> None:
    """Atomically: a reader (a gateway starting, `maas status`) never sees half a file, and a
    failed write (disk full, read-only) leaves the previous state as it was."""
    state = {"models": {name: asdict(d) for name, d in sorted(deployments.items())}}
    try:
        write_text_atomic(path, json.dumps(state, indent=1), durable=True)
    except OSError as error:
        raise DeployError(
            f"cannot write the deploy state {path}: {error.strerror} (the previous state stands)"
        ) from error
