"""The Prefect deployments `maas schedule` serves: training on `schedule.training_cron`, the
controller's reconcile every `schedule.reconcile_interval_s`, monitoring on `monitoring.cron`,
and, with `scoring.schedule` on, scoring new partitions every `scoring.interval_s` (on the
server that `maas.operate.prefect_server` found or started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maas.flows.monitoring import monitoring
from maas.flows.reconcile import reconcile
from maas.flows.scoring import scoring_deployments
from maas.flows.training import training
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Interval

from maas.config import Params
from maas.config.scheduled import ScheduledProject, pin
from maas.errors import ScheduleError


def deployment_names(task: str) -> tuple[str, str, str]:
    """(training, reconcile, monitoring) deployment names: one set per task, so the schedules
    of several tasks live side by side on one Prefect server."""
    return f"nightly-{task}", f"controller-{task}", f"monitor-{task}"


def deployments(params: Params, params_file: Path, overrides: list[str]) -> list[Any]:
    """The task's three deployments (four with scoring.schedule on), with the same parameters
    (the params file by absolute path, the task by name)."""
    parameters = {
        "params_file": str(params_file.resolve()),
        "overrides": overrides,
        "task": params.task,
    }
    schedule = params.schedule
    nightly = Cron(schedule.training_cron, timezone=schedule.timezone)
    tags = ["maas", params.task, params.registry.model_name]
    nightly_name, controller_name, monitor_name = deployment_names(params.task)
    served = [
        training.to_deployment(
            nightly_name,
            schedules=[nightly],
            parameters=parameters,
            description="ingest → validate → train → evaluate → register, on new partitions",
            tags=tags,
            # one training run at a time: a late nightly run waits for the one still running
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
        ),
        reconcile.to_deployment(
            controller_name,
            schedules=[Interval(schedule.reconcile_interval_s)],
            parameters=parameters,
            description="deploy the version at `champion` when it is not the one serving",
            tags=tags,
            # a pass scheduled while one still runs is cancelled, not queued or run beside it:
            # the next interval looks again, and passes never pile up on a busy machine
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
        ),
        monitoring.to_deployment(
            monitor_name,
            schedules=[Cron(params.monitoring.cron, timezone=schedule.timezone)],
            parameters=parameters,
            description="drift and realized quality per period; alert and retrain by policy",
            tags=tags,
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
        ),
    ]
    return served + scoring_deployments(params, parameters, tags)


def serve_deployments(params: Params, params_file: Path, overrides: list[str]) -> None:
    """Register the deployments and run their scheduled flow runs here until interrupted.
    The runs take exactly these parameters: pinned in this process's environment, which they
    inherit and no Prefect API client can change (maas.config.scheduled)."""
    pin(ScheduledProject(str(params_file.resolve()), tuple(overrides), params.task))
    try:
        serve(*deployments(params, params_file, overrides), print_starting_message=False)
    except ValueError as error:  # a cron expression or time zone Prefect does not accept
        raise ScheduleError(
            f"schedule.training_cron / monitoring.cron / schedule.timezone: {error}"
        ) from None
