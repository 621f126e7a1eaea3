"""Commands that run and watch services: `status`, `promote`, `approve`, `rollback`, `watch`,
`schedule`, `worker`, `ui`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from maas.cli.common import (
    JsonOption,
    Project,
    handled,
    interrupted,
    log_builds_to,
    out,
    stop_on_sigterm,
    with_project,
)

MONITORED_PERIODS = 6  # the newest judged periods `maas status` shows


@handled
@with_project
def status(
    project: Project,
    as_json: JsonOption = False,
    events: Annotated[int, typer.Option(help="Audit trail events to show (0: none).")] = 10,
) -> None:
    """Versions with aliases, gate result and test metrics; what serves; the audit trail."""
    params = project.load()
    from maas.monitor.state import judged_periods
    from maas.operate.status import read_status

    periods = judged_periods(params.monitoring.state_dir, params.task)[-MONITORED_PERIODS:]
    current = read_status(params, events, periods)
    if as_json:
        out.print_json(json.dumps(current.to_dict()))
        return
    from maas.cli.render import print_status

    print_status(current)


@handled
@with_project
def promote(
    project: Project,
    version: Annotated[str, typer.Argument(help="Model version number to make champion.")],
) -> None:
    """Move the `champion` alias to VERSION by hand (the controller deploys it)."""
    params = project.load()
    from maas.operate.promotion import promote as promote_version

    moved = promote_version(params, version)
    out.print(f"{moved.model}: champion -> v{moved.version}")


@handled
@with_project
def approve(
    project: Project,
    version: Annotated[str, typer.Argument(help="Model version number to approve.")],
    reason: Annotated[
        str, typer.Option(help="Why it may serve although a check failed (signed, audited).")
    ],
) -> None:
    """Sign a deploy override for VERSION with the gate key: the controller deploys it although
    its gate, data validation or infra-validation failed (never when its verdict was altered)."""
    params = project.load()
    from maas.operate.promotion import approve as approve_version

    approved = approve_version(params, version, reason)
    out.print(f"{approved.model}: v{approved.version} approved by {approved.by}: {reason}")


@handled
@with_project
def rollback(
    project: Project,
) -> None:
    """Move `champion` back to the version deployed before the current one."""
    params = project.load()
    from maas.operate.promotion import rollback as roll_back

    moved = roll_back(params)
    out.print(
        f"{moved.model}: champion -> v{moved.version} (was serving v{moved.previous or '?'}); "
        "the controller redeploys its image"
    )


@handled
@with_project
def undeploy(
    project: Project,
    every: Annotated[
        bool, typer.Option("--all", help="Every task's model, and the gateway.")
    ] = False,
) -> None:
    """Take the model out of service: remove `champion` (so no controller redeploys it) and
    stop its container (the gateway stops with the last model). `maas promote N` serves
    again."""
    from maas.operate.promotion import undeploy as take_down

    for params in project.served() if every else [project.load()]:
        champion, outcome = take_down(params)
        name = params.registry.model_name
        was = f"champion was v{champion}" if champion else "no champion was set"
        if outcome.action == "undeployed":
            out.print(f"{name}: {was}; v{outcome.version} at {outcome.detail} stopped")
        else:
            out.print(f"{name}: {was}; nothing was serving ({outcome.detail or outcome.action})")
    if every:
        from maas.operate.controller import controller_lock
        from maas.operate.targets import make_target

        with controller_lock(params.deploy.state_dir):  # not in the middle of a pass's switch
            left = make_target(params).stop_all()  # models of tasks no longer here
        if left:
            out.print(f"also stopped: {', '.join(left)}")


@handled
@with_project
def watch(
    project: Project,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between passes (default deploy.*).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One reconcile pass, then exit.")] = False,
) -> None:
    """The promotion controller: keep every task's `champion` serving behind deploy.address
    (`--task`: one task's; deploy.tasks: those listed)."""
    served = project.served()
    from maas.cli.prefect_boot import EarlyServer

    # Prefect's temporary server (no PREFECT_API_URL) boots now, not at the first release: a
    # promotion after a controller (re)start does not wait for it
    early = None if once else EarlyServer.start()
    from maas.flows.release import release
    from maas.operate.watch import watch as watch_loop

    stop = stop_on_sigterm()

    def releaser(params: Any) -> Any:
        def release_version(version: str) -> Any:
            if early is not None:
                early.wait()
            try:
                return release(version=version, params=params)
            except Exception as error:
                if stop.is_set() or interrupted(error):  # we are stopping: not a failed deploy
                    stop.set()
                    raise KeyboardInterrupt from None
                raise

        return release_version

    first = served[0]
    models = ", ".join(f"{p.registry.model_name}@champion" for p in served)
    builds = first.deploy.state_dir / "build.log"
    log_builds_to(builds)
    out.print(f"watching {models} -> {first.deploy.address} (image builds log to {builds})")
    with contextlib.suppress(KeyboardInterrupt):
        watch_loop(
            [(params, releaser(params)) for params in served],
            interval or first.deploy.reconcile_interval_s,
            once,
            stop=stop,
        )
    from maas.operate.deployment import read_deployments

    serving = read_deployments(first.deploy.state_dir, first.deploy.target)
    if serving and not once:
        for deployment in serving.values():
            out.print(
                f"stopped watching; still serving {deployment.model} v{deployment.version} at "
                f"{deployment.endpoint} ({deployment.container})"
            )
        out.print("`maas undeploy --task NAME` stops one, `maas undeploy --all` every one")


@handled
@with_project
def schedule(
    project: Project,
    pool: Annotated[
        str | None,
        typer.Option(
            help="Deploy to this Prefect work pool (type process; created when missing) "
            "instead of serving here: `maas worker --pool NAME` runs them on any host."
        ),
    ] = None,
    crashed_after: Annotated[
        float, typer.Option(help="With --pool: a run without heartbeat this long is CRASHED.")
    ] = 90.0,
    kubernetes_template: Annotated[
        Path | None,
        typer.Option(
            help="Write a Kubernetes work pool's base job template (schedule.kubernetes: "
            "image, resources), validated, to this JSON file and exit."
        ),
    ] = None,
) -> None:
    """Serve the Prefect deployments: training on schedule.training_cron (nightly), the
    controller's reconcile every schedule.reconcile_interval_s, monitoring on monitoring.cron.
    Runs until Ctrl-C (with --pool: deploys them and returns, unless it started the server)."""
    params = project.load()
    if kubernetes_template is not None:
        from maas.operate.kubernetes_pool import write_job_template

        job = write_job_template(params.schedule.kubernetes, kubernetes_template)
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        out.print(
            f"{kubernetes_template}: the base job template ({image}; its Job valid Kubernetes); "
            f"prefect work-pool create NAME --type kubernetes --base-job-template "
            f"{kubernetes_template}"
        )
        return
    from maas.operate.prefect_server import ensure_server, stop_server

    stop_on_sigterm()
    log_file = params.deploy.state_dir / "prefect-server.log"
    api_url, server = ensure_server(params, log_file)  # before Prefect is imported
    try:
        if pool:
            deploy_to(
                pool, project, crashed_after, api_url, server_log=log_file if server else None
            )
            if server is not None:  # the workers need it: it stops with this command
                server.wait()
            return
        from maas.flows.schedule import deployment_names, serve_deployments

        nightly, controller, monitor = deployment_names(params.task)

        started = "started here, log " + str(log_file) if server else "already running"
        out.print(f"Prefect API {api_url} ({started}); UI {api_url.removesuffix('/api')}")
        out.print(
            f"training/{nightly}: cron '{params.schedule.training_cron}' "
            f"({params.schedule.timezone}); reconcile/{controller}: every "
            f"{params.schedule.reconcile_interval_s:g}s; monitoring/{monitor}: cron "
            f"'{params.monitoring.cron}'. Run one now: "
            f"prefect deployment run training/{nightly}"
        )
        serve_deployments(params, project.params_file, list(project.overrides))
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server)


def deploy_to(
    pool: str, project: Project, crashed_after_s: float, api_url: str, server_log: Any
) -> None:
    """`maas schedule --pool`: the task's deployments on `pool`, and what the workers need."""
    from maas.flows.schedule import deployments
    from maas.operate.work_pools import deploy_to_pool

    params = project.load()
    made = deployments(params, project.params_file, list(project.overrides))
    names = deploy_to_pool(made, pool, crashed_after_s)
    started = f"started here, log {server_log}; Ctrl-C stops it" if server_log else "running"
    out.print(f"Prefect API {api_url} ({started}); on work pool {pool}: {', '.join(names)}")
    out.print(
        f"run them on each worker host (the project at {project.params_file.resolve().parent}, "
        f"PREFECT_API_URL={api_url}, PREFECT_API_AUTH_STRING if the server has one): "
        f"maas worker --pool {pool} with the same --params/--set"
    )


@handled
@with_project
def worker(
    project: Project,
    pool: Annotated[str, typer.Option(help="The work pool of `maas schedule --pool`.")],
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
    limit: Annotated[int, typer.Option(help="Flow runs at a time on this worker.")] = 1,
) -> None:
    """A Prefect worker on this host for `maas schedule --pool POOL`: runs the deployments of
    the tasks it serves (--task, else every task) with exactly this --params/--set, and
    refuses any run whose parameters, code or job variables differ. Runs until Ctrl-C."""
    import os

    from maas.errors import ScheduleError
    from maas.operate.prefect_server import api_healthy

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise ScheduleError("PREFECT_API_URL is not set: a worker needs the Prefect server's API")
    if not api_healthy(api_url):
        raise ScheduleError(f"PREFECT_API_URL={api_url} does not answer (is the server up?)")
    from maas.config import task_files
    from maas.flows.schedule import deployments
    from maas.operate.pinned_worker import pinned_deployments, run_worker

    params_file = Path(project.params_file)
    tasks = [project.task] if project.task else sorted(task_files(params_file.parent))
    pinned = pinned_deployments(
        deployment
        for task in tasks
        for deployment in deployments(project.load(task), params_file, list(project.overrides))
    )
    stop_on_sigterm()
    out.print(f"worker on pool {pool} ({api_url}): {', '.join(pinned)}; Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(pool, pinned, params_file.resolve().parent, name=name, limit=limit)


@handled
@with_project
def ui(
    project: Project,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="Team mode: e.g. postgresql://user@host:5432/mlflow (default: the "
            "project's store)."
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="Where the server keeps artifacts: a folder or s3://bucket/path "
            "(default: registry.artifact_root)."
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Team mode: MLflow's users and permissions; $MLFLOW_TRACKING_USERNAME and "
            "$MLFLOW_TRACKING_PASSWORD are the admin's (docs/operations.md).",
        ),
    ] = False,
) -> None:
    """The MLflow tracking server + UI on the project's store, with the controller's webhook."""
    params = project.load()
    from maas.tracking.server import start_ui

    log_file = params.deploy.state_dir / "mlflow-server.log"
    stop_on_sigterm()
    process, hook = start_ui(params, log_file, backend_store_uri, artifacts_destination, auth=auth)
    out.print(
        f"MLflow UI: http://{params.deploy.ui_address}  (model "
        f"{params.registry.model_name}; log {log_file})"
    )
    out.print(
        f"webhook {hook.name} -> {hook.url} on alias events; run `maas watch` so a version "
        "given the alias `champion` in the UI becomes the running service"
    )
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)
