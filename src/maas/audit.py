"""The audit trail: who moved which version into service, when and why.

Every decision is one JSON line in `deploy.audit_log` (written first, so it survives an
unreachable registry) and one run in the MLflow experiment `<model>-audit` (shared by everyone
on the same tracking server). An `AuditTrail` is built once per pass and handed on.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from maas import files
from maas.clock import utc_timestamp
from maas.config import Params, RegistryParams
from maas.errors import AuditError
from maas.tracking.registry import CHAMPION
from maas.tracking.store import ensure_experiment, resolve_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from maas.pipeline.register import Registration

log = logging.getLogger(__name__)

AUDIT_TAG = "maas.audit."


def person() -> str:
    """Who ran a command, for the audit trail: user@host."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return f"uid-{os.getuid()}@{socket.gethostname()}"


def registry_client(registry: RegistryParams) -> str:
    """The actor of a `champion` move made outside maas (the MLflow UI, a script): MLflow's
    webhooks and the registry do not say who, so the trail names the server it was made on
    (without credentials)."""
    server = resolve_tracking_uri(registry)
    uri = urlsplit(server)
    if uri.username or uri.password:
        server = urlunsplit(uri._replace(netloc=uri.netloc.rsplit("@", 1)[1], query=""))
    return f"a registry client of {server}"


@dataclass(frozen=True)
class AuditTrail:
    """One model's trail: the local file (projects may share one) and, with a client, its
    mirror in MLflow."""

    model: str
    path: Path
    registry: RegistryParams
    client: MlflowClient | None = None

    @classmethod
    def of(cls, params: Params, client: MlflowClient | None = None) -> AuditTrail:
        return cls(params.registry.model_name, params.deploy.audit_log, params.registry, client)

    @property
    def experiment(self) -> str:
        return f"{self.model}-audit"

    def record(self, event: str, version: str | None, **details: Any) -> dict[str, Any]:
        """Append one event and mirror it into MLflow: who (`actor`), what (`event`,
        `version`), when (`ts`), why (`reason` and other details)."""
        record = {
            "ts": utc_timestamp(),
            "event": event,
            "model": self.model,
            "version": version,
            "actor": details.pop("actor", "controller"),
            **details,
        }
        append_line(self.path, json.dumps(record))
        if self.client is not None:
            try:
                self._mirror(self.client, record)
            except Exception as error:  # the local line is written; the registry may be down
                log.warning(
                    "audit event not mirrored into MLflow (%s); kept in %s", error, self.path
                )
        return record

    def _mirror(self, client: MlflowClient, record: dict[str, Any]) -> None:
        experiment_id = ensure_experiment(client, self.registry, self.experiment)
        tags = {f"{AUDIT_TAG}{k}": str(v)[:5000] for k, v in record.items() if v is not None}
        run = client.create_run(
            experiment_id, run_name=f"{record['event']} v{record['version'] or '-'}", tags=tags
        )
        client.update_run(run.info.run_id, status="FINISHED")  # set_terminated prints a URL

    def read(self) -> list[dict[str, Any]]:
        """This model's events in the local trail, oldest first."""
        if not self.path.is_file():
            return []
        events = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [event for event in events if event.get("model") == self.model]

    def read_mlflow(self, limit: int = 20) -> list[dict[str, Any]]:
        """The shared trail in MLflow (every controller and person on this server), oldest
        first; empty without a client."""
        if self.client is None:
            return []
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        runs = self.client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
        return [
            {k[len(AUDIT_TAG) :]: v for k, v in run.data.tags.items() if k.startswith(AUDIT_TAG)}
            for run in reversed(runs)
        ]


def append_line(path: Path, line: str) -> None:
    """Append one whole line or nothing (see `maas.files.append_line`)."""
    try:
        files.append_line(path, line)
    except OSError as error:
        raise AuditError(
            f"cannot append to the audit trail {path}: {error.strerror} (nothing written)"
        ) from error


def audit_gate_promotion(params: Params, registered: Registration, client: MlflowClient) -> None:
    """One `promoted` event when the gate made the newly registered version champion."""
    if CHAMPION in registered.aliases:
        AuditTrail.of(params, client).record(
            "promoted",
            registered.version,
            actor="gate",
            reason="passed the promotion gate",
            run_id=registered.run_id,
        )
