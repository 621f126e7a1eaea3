"""What `maas status` shows: the registered versions, what serves where, whether that is the
champion, and the latest audit events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maas.audit import AuditTrail
from maas.config import Params
from maas.operate.deployment import Deployment, read_deployment
from maas.operate.gateway_routes import RouteTable
from maas.operate.rollout_control import rollout_status
from maas.scoring.lineage import recent_jobs
from maas.tracking.registry import CHAMPION
from maas.tracking.store import connect
from maas.tracking.versions import VersionRow, list_versions


@dataclass(frozen=True)
class Status:
    model: str
    target: str
    address: str
    versions: list[VersionRow]
    deployed: Deployment | None
    audit: list[dict[str, Any]]
    catalog: list[dict[str, Any]]  # every model behind the stable address (GET /models)
    monitoring: list[dict[str, Any]] = field(default_factory=list)  # newest judged periods
    scoring: list[dict[str, Any]] = field(default_factory=list)  # newest batch jobs
    rollout: dict[str, Any] | None = None  # a progressive rollout in progress (`canary 25%`)

    @property
    def champion(self) -> str | None:
        return next((r.version for r in self.versions if CHAMPION in r.aliases), None)

    @property
    def serving(self) -> str | None:
        return self.deployed.version if self.deployed else None

    @property
    def in_sync(self) -> bool:
        """What serves is the champion, or the champion is rolling out beside it."""
        rolling = self.rollout is not None and self.rollout["candidate"] == self.champion
        return self.serving == self.champion or rolling

    def to_dict(self) -> dict[str, Any]:
        deployed = self.deployed
        return {
            "model": self.model,
            "versions": [row.to_dict() for row in self.versions],
            "deployed": {
                "version": deployed.version,
                "endpoint": deployed.endpoint,
                "target": self.target,
                "image": deployed.image,
                "image_id": deployed.image_id,
                "deployed_at": deployed.deployed_at,
            }
            if deployed
            else None,
            "in_sync": self.in_sync,
            "rollout": self.rollout,
            "audit": self.audit,
            "catalog": self.catalog,
            "monitoring": self.monitoring,
            "scoring": self.scoring,
        }


def read_status(
    params: Params, events: int = 10, monitoring: list[dict[str, Any]] | None = None
) -> Status:
    """The registry's versions, the target's deployment and the last `events` audit events
    (the shared trail in MLflow; the local file when nothing was mirrored yet); `monitoring`:
    the newest judged periods (`maas.monitor.state`, read by the caller)."""
    client = connect(params.registry)
    rows = list_versions(client, params.registry.model_name)
    audit = AuditTrail.of(params, client)
    trail = audit.read_mlflow(events) if events else []
    if events and not trail:
        trail = audit.read()[-events:]
    return Status(
        model=params.registry.model_name,
        target=params.deploy.target,
        address=params.deploy.address,
        versions=rows,
        deployed=read_deployment(
            params.deploy.state_dir, params.deploy.target, params.registry.model_name
        ),
        audit=trail,
        catalog=read_catalog(params),
        monitoring=monitoring or [],
        scoring=recent_jobs(client, params.registry.model_name, limit=5),
        rollout=rollout_status(params),
    )


def read_catalog(params: Params) -> list[dict[str, Any]]:
    """The catalog the stable address answers at GET /models (as last published)."""
    if params.deploy.target != "local":
        return []
    table = RouteTable.read(params.deploy.state_dir / "gateway.json")
    return [entry for _, entry in sorted(table.catalog.items())]
