"""What serves: a deployment record per target, kept in a state file written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from maas.errors import MaasError
from maas.files import write_text_atomic


class DeployError(MaasError):
    """A version could not be deployed; the previous one keeps serving."""


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


STATE_FILE = "local.json"
STATE_FILES = {"local": STATE_FILE, "kubernetes": "kubernetes.json"}


def read_deployment(state_dir: Path, target: str = "local") -> Deployment | None:
    """What a target serves, from its state file (None before the first deploy)."""
    try:
        return Deployment(**json.loads((state_dir / STATE_FILES[target]).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def write_state(path: Path, deployment: Deployment) -> None:
    """Atomically: a reader (a gateway starting, `maas status`) never sees half a file, and a
    failed write (disk full, read-only) leaves the previous state as it was."""
    try:
        write_text_atomic(path, json.dumps(asdict(deployment), indent=1), durable=True)
    except OSError as error:
        raise DeployError(
            f"cannot write the deploy state {path}: {error.strerror} (the previous state stands)"
        ) from error
