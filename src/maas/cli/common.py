"""What every command shares: options, the process environment, and error handling in one place
(an error a user can act on becomes one line and an exit code; anything else is a bug and
keeps its traceback)."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from maas.cli.logs import configure_from_environment
from maas.config import ConfigError, Params, load_params
from maas.errors import MaasError
from maas.serving.errors import ServingError

PIPED_WIDTH = 10_000  # piped or redirected output: lines and tables print whole


def make_console(*, stderr: bool = False) -> Console:
    """A console that fits its terminal, and prints full width when piped (Rich would wrap at
    80 columns there), unless COLUMNS says otherwise."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=PIPED_WIDTH)


console = make_console(stderr=True)
out = make_console()

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Parameters file.")]
TaskOption = Annotated[
    str | None,
    typer.Option(
        "--task",
        "-t",
        envvar="MAAS_TASK",
        help="Task (tasks/NAME.yaml); default: params.yaml's `task`.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-S", help="Override a parameter: section.key=value.")
]
DvcAddOption = Annotated[bool, typer.Option(help="Record data/raw with `dvc add` afterwards.")]
DEFAULT_PARAMS = Path("params.yaml")
QUIET_LOGGERS = (
    "great_expectations",
    "alembic",
    "mlflow",
    "httpx",
    "urllib3",
    "onnxscript",
    "onnx_ir",
    "matplotlib",
    "torch.onnx",
)
BUILD_LOGGERS = ("bentoml._internal.container",)  # a line per image build step

F = TypeVar("F", bound=Callable[..., Any])


def setup_environment() -> None:
    """Offline-friendly defaults; explicit user settings always win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "maas")
    # maas loggers also run outside flows (the webhook receiver): no warning for that
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Without PREFECT_API_URL a flow starts a temporary Prefect server; Prefect waits 20 s for
    # it, which a busy 2-core machine can exceed (a nightly run beside a training): 120 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # MLflow's HTTP client retries each call 7 times with exponential backoff (minutes when
    # the tracking server is down); maas retries whole steps itself (connect: 3 tries with
    # backoff; register: 2 task retries), so a dead server is reported in about a minute.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow's loggers keep their own stderr handler unless told not to; without it their
    # records (the database set-up lines) follow maas's rule: the log file (maas.cli.logs)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    configure_from_environment()
    if logging.getLogger().level >= logging.INFO:  # at DEBUG (asked for) they say all
        for noisy in QUIET_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # The signature is declared on purpose (long times/distance, optional double weather).
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
    # MLflow asks for type hints on predict on every log and load; the model's signature is
    # declared instead (maas.tracking.pyfunc_model), so the hint would say nothing new.
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")


def log_builds_to(path: Path) -> None:
    """Image build output (BentoML's builder, a line per build step) goes to its own file,
    not to the log a person reads; the release logs where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    for name in BUILD_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def fail(error: BaseException, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(str(error))}")  # "[block]" is text, not markup
    return typer.Exit(code)


def handled(function: F) -> F:
    """A command: the environment set up first; ConfigError exits 2, any other MaasError or
    ServingError exits 1, each as one line naming what is wrong."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        setup_environment()
        try:
            return function(*args, **kwargs)
        except ConfigError as error:
            raise fail(error, 2) from None
        except (MaasError, ServingError) as error:
            raise fail(error) from None

    return command  # type: ignore[return-value]


@dataclass(frozen=True)
class Project:
    """Where a command's parameters come from: `--params`, `--task` and `--set`, declared once
    (`with_project` adds them to every command that takes a `project`)."""

    params_file: Path = DEFAULT_PARAMS
    task: str | None = None
    overrides: tuple[str, ...] = ()

    def load(self, task: str | None = None) -> Params:
        """The parameters of `task` (default: the command's `--task`, else params.yaml's)."""
        return load_params(self.params_file, self.overrides, task or self.task)

    def flow_args(self) -> dict[str, Any]:
        """The same choice as a flow's parameters (flows load their own parameters)."""
        return {
            "params_file": str(self.params_file),
            "overrides": list(self.overrides),
            "task": self.task,
        }

    def served(self) -> list[Params]:
        """The tasks whose models serve together (`--task`: that one; else deploy.tasks, else
        every task file), each task's parameters; they must share one deploy address and
        state."""
        from maas.config import task_files

        if self.task:
            return [self.load()]
        first = self.load()
        names = first.deploy.tasks or sorted(task_files(Path(self.params_file).parent))
        loaded = [self.load(name) for name in names]
        models: dict[str, str] = {}
        for params in loaded:
            model = params.registry.model_name
            if model in models:
                raise ConfigError(
                    f"tasks {models[model]} and {params.task} both register model {model!r}: "
                    "give each its own registry.model_name, or serve one task (--task NAME)"
                )
            models[model] = params.task
            for key in ("address", "state_dir", "target"):
                if getattr(params.deploy, key) != getattr(first.deploy, key):
                    raise ConfigError(
                        f"task {params.task}: deploy.{key} {getattr(params.deploy, key)} "
                        f"differs from {getattr(first.deploy, key)}; the models served together "
                        "share it (or serve one task: --task NAME)"
                    )
        return loaded


PROJECT_OPTIONS = {"params_file": ParamsOption, "task": TaskOption, "overrides": SetOption}


def with_project(function: F) -> F:
    """A command that takes `project: Project` gets the `--params`, `--task` and `--set`
    options in its place (Typer reads the signature set here)."""
    signature = inspect.signature(function, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "project"]
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for (name, kind), default in zip(
            PROJECT_OPTIONS.items(), (DEFAULT_PARAMS, None, None), strict=True
        )
    ]

    @functools.wraps(function)
    def command(
        *args: Any,
        params_file: Path = DEFAULT_PARAMS,
        task: str | None = None,
        overrides: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        project = Project(params_file, task, tuple(overrides or ()))
        return function(*args, project=project, **kwargs)

    command.__signature__ = signature.replace(parameters=[*kept, *options])  # type: ignore[attr-defined]
    command.__annotations__ = {
        **{k: v for k, v in function.__annotations__.items() if k != "project"},
        **PROJECT_OPTIONS,
    }
    return command  # type: ignore[return-value]


def stop_on_sigterm() -> threading.Event:
    """Long-running commands stop on SIGTERM as on Ctrl-C (children and files cleaned up).

    The returned event stays set after the interrupt: a Prefect flow run that the signal
    lands in ends as a crashed run and its caller may see an ordinary exception, so loops
    (the controller's) ask the event, not the exception, whether to stop."""
    stop = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    return stop


def interrupted(error: BaseException) -> bool:
    """Whether `error` happened while a stop signal was propagating: a KeyboardInterrupt, or
    the TerminationSignal that Prefect raises for SIGTERM inside a flow run, anywhere in its
    chain (a clean-up step that failed while handling it replaces it with its own error, and
    then Prefect never hands the signal on to `stop_on_sigterm`'s handler)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if not isinstance(current, Exception):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def track_raw_data(raw_dir: Path, dvc_add: bool) -> None:
    """`dvc add` the raw data folder after it changed (when this is a DVC project), unless
    this command is itself a DVC stage (`DVC_STAGE`, set by `dvc repro`): then the folder is
    that stage's output, which DVC records itself."""
    if dvc_add and Path(".dvc").is_dir() and not os.environ.get("DVC_STAGE"):
        from maas.pipeline.data.dvc import track_raw_data as dvc_add_folder

        dvc_add_folder(raw_dir)
