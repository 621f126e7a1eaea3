"""The catalog: what `GET /models` at the stable address answers, one entry per model.

Written by the controller after each pass that changes what a model's entry says (and before
a switch: `switching`), published through the gateway's Runtime API; `maas status` reads it.
An entry's `state` says what a client gets: `serving` while any version answers, even when the
champion could not be deployed (`champion_state` and `detail` then say which and why: "serving
v1; v2 failed: ...").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maas.config import Params

if TYPE_CHECKING:
    from maas.operate.targets import Target

log = logging.getLogger(__name__)

# controller outcome -> the state a client sees (busy: another pass decides; no entry change)
STATES = {
    "in_sync": "serving",
    "deployed": "serving",
    "switching": "switching",
    "refused": "refused",
    "failed": "failed",
    "waiting": "failed",
    "unhealthy": "mismatch",
}
NOT_DEPLOYED = ("refused", "failed", "waiting")  # the champion did not become the service


@dataclass(frozen=True)
class Catalog:
    """One model's entry in the catalog of a target, built once per pass."""

    model: str
    task: str
    kind: str
    target: Target

    @classmethod
    def of(cls, params: Params, target: Target) -> Catalog:
        return cls(params.registry.model_name, params.task, params.data.label.kind, target)

    def entry(self, action: str, champion: str | None, detail: str = "") -> dict[str, Any] | None:
        """The model's entry after a pass that ended in `action` (None: out of the catalog)."""
        deployment = self.target.current(self.model)
        if deployment is None and action not in (*NOT_DEPLOYED, "switching"):
            return None
        before = self.target.catalog().get(self.model) or {}
        state = STATES.get(action, action)
        # why, without a container's log tail: the catalog is open like /docs.json
        why = (
            detail.split("; container log tail")[0] if action not in ("in_sync", "deployed") else ""
        )
        if deployment is not None and action in NOT_DEPLOYED and deployment.version != champion:
            why = f"serving v{deployment.version}; v{champion} {state}: {why}"
            state = "serving"  # the previous version answers every request
        entry: dict[str, Any] = {
            "model": self.model,
            "task": self.task,
            "kind": self.kind,
            "state": state,
            "champion_state": STATES.get(action, action),
            "champion_version": champion,
            "served_version": deployment.version if deployment else None,
            "endpoint": deployment.endpoint if deployment else None,
            "deployed_at": deployment.deployed_at if deployment else None,
            "replicas": len(deployment.all_containers) if deployment else 0,
            "inputs": before.get("inputs", []),
            "detail": why[:300],
        }
        if deployment is not None:
            base = f"/models/{self.model}"
            entry["paths"] = {
                "predict": f"{base}/predict",
                "metadata": f"{base}/metadata",
                "docs": f"{base}/docs.json",
                "version": f"{base}/versions/{deployment.version}/predict",
            }
            if before.get("served_version") != deployment.version or not entry["inputs"]:
                try:  # what the running service says it takes
                    described = self.target.describe(deployment)
                    entry["inputs"] = described.get("inputs", [])
                    entry["kind"] = described.get("kind") or entry["kind"]
                except Exception as error:  # it answers on the next pass
                    log.debug("describing %s v%s: %s", self.model, deployment.version, error)
        return entry

    def publish(self, action: str, champion: str | None, detail: str = "") -> None:
        """Put the model's entry in the catalog when it changed; never fails a pass."""
        if action == "busy":
            return
        try:
            entry = self.entry(action, champion, detail)
            if entry != self.target.catalog().get(self.model):
                self.target.publish(self.model, entry)
        except Exception as error:  # bookkeeping: the next pass publishes again
            log.warning("publishing %s's catalog entry: %s", self.model, error)
