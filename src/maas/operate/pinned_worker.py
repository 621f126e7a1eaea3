"""`maas worker --pool NAME`: a Prefect process worker that runs only its owner's runs.

Whoever can write to the Prefect API can change a deployment's parameters, start a run with
parameters or job variables of their own (a process worker takes `command`, `env` and
`working_dir` from them), or point a deployment at other code (pull steps, entrypoint). A
stock worker runs all of it on its host. This worker is pinned instead, on its own host, by
whoever starts it: the params file, overrides and tasks it serves (its command line) decide
which runs it takes. Before starting a run it reads the run's deployment and refuses the run
(it ends CRASHED with the reason) unless

- the deployment is one `maas schedule --pool` makes for a served task, with the flow's module
  as entrypoint and no pull steps (no code from anywhere but the installed maas);
- neither the pool's job template (Prefect's default for `process`), the deployment nor the run
  set job variables (no command, environment or working directory of the caller's);
- the run's parameters are exactly the pinned project's (maas.config.scheduled.refusal).

It then starts the run with the pin in its environment (the flow refuses other parameters
itself, maas.config.scheduled.load_run_params, should they change after this check), in the
project's folder, with heartbeats on (maas.operate.work_pools: crash detection).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.utilities.processutils import command_to_string, get_sys_executable
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from maas.config.scheduled import PIN_ENV, ScheduledProject, pin_value, refusal
from maas.errors import ConfigError, ScheduleError
from maas.operate.work_pools import HEARTBEAT_S, module_entrypoint


@dataclass(frozen=True)
class PinnedDeployment:
    """A deployment this worker runs: the code its runs import and the project they take."""

    name: str
    entrypoint: str  # maas.flows.<module>.<flow function>
    project: ScheduledProject


def pinned_deployments(deployments: Iterable[Any]) -> dict[str, PinnedDeployment]:
    """Deployment name -> pin, from flows/schedule.py's deployments built with the owner's
    params file and overrides (one set per served task)."""
    pinned = {}
    for deployment in deployments:
        parameters = deployment.parameters
        project = ScheduledProject(
            parameters["params_file"], tuple(parameters["overrides"]), parameters["task"]
        )
        entrypoint = module_entrypoint(str(deployment.entrypoint))
        pinned[deployment.name] = PinnedDeployment(deployment.name, entrypoint, project)
    return pinned


def refusal_of(
    flow_run: FlowRun,
    deployment: DeploymentResponse | None,
    pool_template: Mapping[str, Any],
    pinned: Mapping[str, PinnedDeployment],
) -> str | None:
    """Why this worker does not run `flow_run` (None: it is the owner's)."""
    if deployment is None:
        return "the run belongs to no deployment"
    pin = pinned.get(deployment.name)
    if pin is None:
        return f"deployment {deployment.name!r} is not one this worker runs ({', '.join(pinned)})"
    about = f"deployment {deployment.name!r}"
    if deployment.entrypoint != pin.entrypoint:
        return f"{about} imports {deployment.entrypoint!r}, not {pin.entrypoint!r}"
    if deployment.pull_steps:
        return f"{about} has pull steps ({len(deployment.pull_steps)}): code from elsewhere"
    if deployment.job_variables:
        return f"{about} sets job variables {sorted(deployment.job_variables)}"
    if flow_run.job_variables:
        return f"the run sets job variables {sorted(flow_run.job_variables)}"
    if dict(pool_template) != ProcessWorker.get_default_base_job_template():
        return "the work pool's job template is not Prefect's default for process pools"
    parameters = flow_run.parameters
    return refusal(
        pin.project,
        str(parameters.get("params_file", "")),
        list(parameters.get("overrides") or ()),
        parameters.get("task"),
    )


def engine_command() -> str:
    """The command a process worker starts a run with when nobody configured one."""
    return command_to_string([get_sys_executable(), "-m", "prefect.engine"])


class PinnedProcessWorker(ProcessWorker):
    """A process worker that runs only `pinned` deployments' runs, as described above."""

    @classmethod
    def __dispatch_key__(cls) -> str:
        """Its own key in Prefect's registry of worker types, which maps `process` (this
        worker's pool type) to Prefect's ProcessWorker for every other caller."""
        return "maas-pinned-process"

    def __init__(
        self, *, pinned: Mapping[str, PinnedDeployment], project_dir: Path, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pinned = dict(pinned)
        self.project_dir = project_dir

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        deployment = None
        if flow_run.deployment_id is not None:
            deployment = await self.client.read_deployment(flow_run.deployment_id)
        reason = refusal_of(flow_run, deployment, self.work_pool.base_job_template, self.pinned)
        if reason is None and configuration.command != engine_command():
            reason = f"the run's command is {configuration.command!r}"
        if reason is not None or deployment is None:
            self.get_flow_run_logger(flow_run).error(
                "maas worker %s refused: %s", self.name, reason
            )
            raise ConfigError(f"maas worker {self.name} refused the run: {reason}")
        project = self.pinned[deployment.name].project
        configuration.env = {
            **configuration.env,
            PIN_ENV: pin_value(project),
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),
            "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false",  # nothing installed here
        }
        configuration.working_dir = self.project_dir
        # Start `python -m prefect.engine` as a configured command: it imports the flow by
        # module. Left unconfigured, the process worker first copies the deployment's `path`
        # (or this worker's working folder) into the run's folder, as for code from storage.
        configuration.command = engine_command()
        configuration._command_configured = True
        return await super().run(flow_run, configuration, task_status)


def check_pool(pool: str) -> None:
    """`pool` exists on the Prefect API and is a process pool (ScheduleError otherwise)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from maas.operate.work_pools import POOL_TYPE

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            raise ScheduleError(
                f"--pool {pool}: no such work pool on PREFECT_API_URL="
                f"{os.environ.get('PREFECT_API_URL')} (`maas schedule --pool {pool}` creates it)"
            ) from None
    if found.type != POOL_TYPE:
        raise ScheduleError(f"--pool {pool}: type {found.type!r}, not {POOL_TYPE!r}")


def run_worker(
    pool: str,
    pinned: Mapping[str, PinnedDeployment],
    project_dir: Path,
    *,
    name: str | None = None,
    limit: int = 1,
) -> None:
    """Poll `pool` and run the pinned deployments' runs, `limit` at a time, until interrupted
    (KeyboardInterrupt). Runs already started finish on their own: they are processes of
    their own, which report their end to the Prefect API."""
    check_pool(pool)
    worker = PinnedProcessWorker(
        pinned=pinned,
        project_dir=project_dir,
        work_pool_name=pool,
        name=name or f"maas-{os.uname().nodename}-{os.getpid()}",
        limit=limit,  # without a limit one worker takes every run it sees
        create_pool_if_not_found=False,
    )
    anyio.run(worker.start)
