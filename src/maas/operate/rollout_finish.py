"""A rollout's decisions carried out: rolled back (the candidate out of the routes, `champion`
back, tags, audit event with the numbers, alert) or promoted (the candidate the only serving
version, recorded as a deploy). Each is written down first (`phase`), and each of its steps
can run again: a controller killed half-way finishes it on its next pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.audit import AuditTrail
from maas.clock import utc_timestamp
from maas.config import Params
from maas.operate.deployment import Deployment, write_state
from maas.operate.gateway import Gateway
from maas.operate.gateway_canary import end_canary
from maas.operate.records import record_deployment, record_replaced
from maas.operate.rollout_fleet import Fleet
from maas.operate.rollout_state import Progress, Rollout, RolloutStore
from maas.tracking.alias_lock import champion_lock
from maas.tracking.registry import CHAMPION, get_alias_version, set_alias, set_version_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from maas.operate.targets import LocalTarget

log = logging.getLogger(__name__)

Alert = Callable[[dict[str, Any]], str | None]  # body -> None when sent, else why not


@dataclass
class Finisher:
    model: str
    client: MlflowClient
    trail: AuditTrail
    gateway: Gateway
    fleet: Fleet
    store: RolloutStore
    state_file: Path  # the target's deploy state (local.json)
    endpoint: str  # the model's path at the gateway
    alert: Alert
    target: str = "local"
    drain_s: float = 2.0

    @classmethod
    def of(
        cls,
        params: Params,
        client: MlflowClient,
        target: LocalTarget,
        fleet: Fleet,
        trail: AuditTrail,
    ) -> Finisher:
        from maas.monitor.alerts import post_alert

        return cls(
            model=params.registry.model_name,
            client=client,
            trail=trail,
            gateway=target.gateway,
            fleet=fleet,
            store=RolloutStore.at(params.deploy.state_dir),
            state_file=target.state_file,
            endpoint=target.model_endpoint(params.registry.model_name),
            alert=lambda body: (
                post_alert(params, body)
                if params.monitoring.alert_webhook
                else "not sent: no monitoring.alert_webhook"
            ),
            drain_s=target.drain_s,
        )

    def _tags(self, version: str, tags: dict[str, str]) -> None:
        try:
            set_version_tags(self.client, self.model, version, tags)
        except Exception as error:  # the audit event says it; the next decision tags again
            log.warning("%s v%s: tagging %s: %s", self.model, version, tags, error)

    def failed(self, version: str, reason: str, still_serving: str) -> None:
        """The candidate did not start: as a failed release (retried after a while)."""
        self.trail.record("failed", version, reason=reason, still_serving=still_serving)
        self._tags(
            version,
            {
                "deploy_status": "failed",
                "deploy_reason": reason,
                "deploy_attempted_at": str(int(time.time())),
                "rollout_state": "failed",
                "rollout_reason": reason,
            },
        )

    def roll_back(self, rollout: Rollout, reason: str, actor: str = "controller") -> Progress:
        """The previous version serves alone again; `champion` goes back to it (unless someone
        moved it elsewhere meanwhile); the candidate says why, with the numbers; its
        containers are removed once their requests in flight finished."""
        end_canary(self.gateway, self.model, promote=False)
        numbers = {c["name"]: c.get("numbers", {}) for c in rollout.checks}
        moved = self._alias_back(rollout)
        alert = self.alert(
            {
                "text": f"maas: {self.model} v{rollout.candidate} rolled back at "
                f"{rollout.step_label}: {reason}",
                "model": self.model,
                "version": rollout.candidate,
                "reasons": [reason],
            }
        )
        self.trail.record(
            "rollout_rolled_back",
            rollout.candidate,
            actor=actor,
            reason=reason,
            step=rollout.step_label,
            still_serving=rollout.previous,
            champion_moved_back=moved,
            checks=numbers,
            alert=alert or "sent",
        )
        self._tags(
            rollout.candidate,
            {
                "rollout_state": "rolled_back",
                "rollout_reason": reason[:5000],
                "rollout_step": f"{rollout.step + 1}/{len(rollout.steps)}",
                "deploy_status": "rolled_back",
                "deploy_reason": reason[:1000],
            },
        )
        time.sleep(self.drain_s)
        self.fleet.remove(rollout.containers)
        self.store.remove(self.model)
        log.warning("%s v%s rolled back: %s", self.model, rollout.candidate, reason)
        return Progress("rolled_back", rollout.candidate, "rolled_back", reason)

    def _alias_back(self, rollout: Rollout) -> bool:
        """`champion` back to the previous version if it still names the candidate."""
        with champion_lock(self.client.tracking_uri, self.model):
            now = get_alias_version(self.client, self.model, CHAMPION)
            if now is None or str(now.version) != rollout.candidate:
                return False
            set_alias(self.client, self.model, CHAMPION, rollout.previous)
        return True

    def promote(self, rollout: Rollout, reason: str, actor: str = "controller") -> Progress:
        """The candidate becomes the only serving version: routed alone, recorded as what
        serves, the previous version's containers removed once drained."""
        end_canary(self.gateway, self.model, promote=True)
        deployment = Deployment(
            model=self.model,
            version=rollout.candidate,
            image=rollout.image,
            image_id=rollout.image_id,
            container=rollout.containers[0],
            port=rollout.ports[0],
            endpoint=self.endpoint,
            deployed_at=utc_timestamp(),
            containers=list(rollout.containers),
            ports=list(rollout.ports),
        )
        write_state(self.state_file, deployment)
        self.trail.record(
            "deployed",
            rollout.candidate,
            actor=actor,
            image=rollout.image,
            image_id=rollout.image_id,
            endpoint=self.endpoint,
            target=self.target,
            previous=rollout.previous,
            rollout=reason,
        )
        try:
            record_deployment(self.client, self.model, self.target, deployment)
            record_replaced(self.client, self.model, rollout.candidate)
        except Exception as error:  # serving and recorded locally: the tags follow later
            log.warning(
                "%s v%s serves; recording its tags: %s", self.model, rollout.candidate, error
            )
        self._tags(
            rollout.candidate,
            {
                "rollout_state": "promoted",
                "rollout_reason": reason[:5000],
                "rollout_step": f"{len(rollout.steps)}/{len(rollout.steps)}",
            },
        )
        time.sleep(self.drain_s if rollout.previous_containers else 0)
        self.fleet.remove([c for c in rollout.previous_containers if c not in rollout.containers])
        self.store.remove(self.model)
        log.info("%s v%s promoted: %s", self.model, rollout.candidate, reason)
        return Progress("promoted", rollout.candidate, "promoted", reason)
