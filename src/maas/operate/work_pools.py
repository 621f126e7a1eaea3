"""`maas schedule --pool NAME`: the same deployments on a Prefect work pool, run by workers.

Instead of serving its deployments in-process, `maas schedule` creates them on a work pool of
type `process` (created when missing) and returns; `maas worker --pool NAME` on any host runs
their flow runs (maas.operate.pinned_worker). The deployments are those `maas schedule` serves
(flows/schedule.py: names, schedules, concurrency limits, tags, parameters), with one change:
their entrypoint is the installed module (`maas.flows.training.training`), not a file path, so
a worker needs maas installed and the project at the same path, nothing copied or pulled.

A worker's host that dies takes its flow runs with it, and nobody reports them: Prefect's own
answer is heartbeats (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, set by `maas worker`) and an
automation that marks a run CRASHED when they stop (`ensure_crash_detection`). It covers only
runs of pool deployments (one more tag, POOL_TAG): other flows on the server, and the runs
`maas schedule` serves in-process, send heartbeats only every 180 s (Prefect's default).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from maas.errors import ScheduleError

log = logging.getLogger(__name__)

POOL_TYPE = "process"
FLOWS_MODULE = "maas.flows"  # where flows/ installs (pyproject.toml's package-dir)
POOL_TAG = "maas-pool"  # on the deployments made here, so on their runs and their events
HEARTBEAT_S = 30  # Prefect's shortest heartbeat interval
CRASH_DETECTION = "maas-crashed-runs"
TERMINAL_EVENTS = ("Completed", "Failed", "Cancelled", "Crashed")


def module_entrypoint(file_entrypoint: str) -> str:
    """`flows/training.py:training` (or any path to it) -> `maas.flows.training.training`."""
    file, _, function = file_entrypoint.rpartition(":")
    if not file or not function:
        raise ScheduleError(f"entrypoint {file_entrypoint!r} is not FILE.py:FUNCTION")
    return f"{FLOWS_MODULE}.{Path(file).stem}.{function}"


def on_pool(deployment: Any) -> Any:
    """A `flow.to_deployment(...)` of flows/schedule.py, imported by module on the workers
    (no code pulled from anywhere), tagged POOL_TAG and active (a `maas schedule` that served
    it pauses it on exit)."""
    entrypoint = module_entrypoint(str(deployment.entrypoint))
    tags = [*deployment.tags, POOL_TAG]
    return deployment.model_copy(update={"entrypoint": entrypoint, "paused": False, "tags": tags})


def ensure_pool(client: SyncPrefectClient, pool: str) -> None:
    """The work pool `pool`, of type process with Prefect's own job template (what workers
    accept: maas.operate.pinned_worker), created when missing."""
    try:
        existing = client.read_work_pool(pool)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=pool, type=POOL_TYPE, base_job_template=template)
        )
        log.info("created work pool %s (type %s)", pool, POOL_TYPE)
        return
    if existing.type != POOL_TYPE:
        raise ScheduleError(
            f"--pool {pool}: that work pool has type {existing.type!r}; maas workers run pools "
            f"of type {POOL_TYPE!r} (name another pool)"
        )


def crash_detection(crashed_after_s: float) -> AutomationCore:
    """Mark a maas flow run CRASHED when neither a heartbeat nor an end arrives within
    `crashed_after_s` of its last heartbeat (its worker's host is gone)."""
    if crashed_after_s < 1.5 * HEARTBEAT_S:
        raise ScheduleError(
            f"--crashed-after {crashed_after_s:g}: at least {1.5 * HEARTBEAT_S:g} s (runs send "
            f"a heartbeat every {HEARTBEAT_S} s)"
        )
    return AutomationCore(
        name=CRASH_DETECTION,
        description="maas work-pool runs whose heartbeats stopped: their worker or host is gone",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.role": "tag",
                "prefect.resource.id": f"prefect.tag.{POOL_TAG}",
            },
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                *(f"prefect.flow-run.{state}" for state in TERMINAL_EVENTS),
            },
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(seconds=crashed_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message=f"no heartbeat for {crashed_after_s:g} s: its worker or host is gone",
                force=False,  # a run that has ended stays as it ended
            )
        ],
    )


def ensure_crash_detection(client: SyncPrefectClient, crashed_after_s: float) -> None:
    """One automation per server (created, or updated to `crashed_after_s`)."""
    wanted = crash_detection(crashed_after_s)
    existing = client.read_automations_by_name(CRASH_DETECTION)
    if existing:
        client.update_automation(existing[0].id, wanted)
    else:
        client.create_automation(wanted)


def deploy_to_pool(deployments: Sequence[Any], pool: str, crashed_after_s: float) -> list[str]:
    """Create or update `deployments` on `pool` (and the pool, and crash detection); their
    `flow/deployment` names. Nothing is created when the pool is of another type."""
    with get_client(sync_client=True) as client:
        ensure_pool(client, pool)
        ensure_crash_detection(client, crashed_after_s)
    names = []
    for deployment in deployments:
        on_pool(deployment).apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names
