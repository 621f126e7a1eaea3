"""Monitoring flow: judge what the task's champion served and what arrived since it trained
(`maas monitor`, and `maas schedule` on monitoring.cron). Wiring only: the judging lives in
`maas.monitor`. On a new breach with monitoring.retrain on (and no cooldown), the training flow
runs now; its version still faces the gate, and the controller still deploys only champions."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from maas.audit import AuditTrail
from maas.config.scheduled import load_run_params
from maas.monitor.report import markdown
from maas.monitor.run import monitor_task
from maas.tracking.store import connect

judge = task(name="judge_periods", cache_policy=NO_CACHE)(monitor_task)


@flow(name="monitoring", log_prints=True)
def monitoring(
    params_file: str = "params.yaml", overrides: list[str] | None = None, task: str | None = None
) -> dict[str, Any]:
    """Judge each period with new evidence; alert, and retrain when the policy says so."""
    params = load_run_params(params_file, overrides, task)  # a scheduled run: the owner's
    outcome = judge(params=params)
    result = outcome.to_dict()
    about = f"{params.task}: drift and realized quality per period"
    create_markdown_artifact(markdown(outcome), key=f"monitoring-{params.task}", description=about)
    if outcome.new_breaches and outcome.retrain is None:
        from maas.flows.training import training

        champion = next((p["champion"] for p in outcome.periods), None)
        reasons = [f"{b['period']}: {b['reason']}" for b in outcome.new_breaches]
        trail = AuditTrail.of(params, connect(params.registry))  # mirrored into MLflow
        trail.record("monitor_retrain", champion, actor="monitor", reason="; ".join(reasons))
        trained = training(params_file=params_file, overrides=overrides, task=task)
        registered = trained["registered"]  # the run's JSON outcome (pipeline.report)
        trail.record(
            "monitor_retrained",
            registered["version"],
            actor="monitor",
            reason=f"training run {registered['run_id']} on the breach; aliases "
            f"{registered['aliases'] or 'none'}",
            note=registered.get("note"),
        )
        result["training"] = registered
    return result
