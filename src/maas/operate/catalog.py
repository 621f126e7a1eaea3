"""The catalog: what `GET /models` at the stable address answers, one entry per model.

Written by the controller after each pass that changes what a model's entry says (and before
a switch: `switching`), published through the gateway's Runtime API; `maas status` reads it.
"""

from __future__ import annotations

import logging
from typing import Any

from maas.config import Params

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


def catalog_entry(
    params: Params, target: Any, action: str, champion: str | None, detail: str = ""
) -> dict[str, Any] | None:
    """The model's entry after a pass that ended in `action` (None: out of the catalog)."""
    name = params.registry.model_name
    deployment = target.current(name)
    if deployment is None and action not in ("refused", "failed", "waiting", "switching"):
        return None
    before = target.catalog().get(name) or {}
    entry: dict[str, Any] = {
        "model": name,
        "task": params.task,
        "kind": params.data.label.kind,
        "state": STATES.get(action, action),
        "champion_version": champion,
        "served_version": deployment.version if deployment else None,
        "endpoint": deployment.endpoint if deployment else None,
        "deployed_at": deployment.deployed_at if deployment else None,
        "replicas": len(deployment.all_containers) if deployment else 0,
        "inputs": before.get("inputs", []),
        # why, without a container's log tail: the catalog is open like /docs.json
        "detail": detail.split("; container log tail")[0][:300]
        if action not in ("in_sync", "deployed")
        else "",
    }
    if deployment is not None:
        base = f"/models/{name}"
        entry["paths"] = {
            "predict": f"{base}/predict",
            "metadata": f"{base}/metadata",
            "docs": f"{base}/docs.json",
            "version": f"{base}/versions/{deployment.version}/predict",
        }
        if before.get("served_version") != deployment.version or not entry["inputs"]:
            try:  # what the running service says it takes
                described = target.describe(deployment)
                entry["inputs"] = described.get("inputs", [])
                entry["kind"] = described.get("kind") or entry["kind"]
            except Exception as error:  # it answers on the next pass
                log.debug("describing %s v%s: %s", name, deployment.version, error)
    return entry


def publish(
    params: Params, target: Any, action: str, champion: str | None, detail: str = ""
) -> None:
    """Put the model's entry in the catalog when it changed; never fails a pass."""
    if action == "busy":
        return
    name = params.registry.model_name
    try:
        entry = catalog_entry(params, target, action, champion, detail)
        if entry != target.catalog().get(name):
            target.publish(name, entry)
    except Exception as error:  # bookkeeping: the next pass publishes again
        log.warning("publishing %s's catalog entry: %s", name, error)
