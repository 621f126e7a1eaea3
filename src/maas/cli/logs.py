"""Where a command's log lines go: every record at the level the user asks for into the log
file; the terminal shows maas's own lines and any error. Library chatter (Python warnings,
Prefect's run bookkeeping and temporary server, MLflow's database set-up, Great Expectations)
reaches the terminal only with `maas --verbose`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from maas.config import ConfigError

LOG_FILE = Path(".maas") / "logs" / "maas.log"  # in the project folder; MAAS_LOG_FILE moves it
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
SHOWN = "maas"  # the loggers whose INFO lines a person reads at the terminal (and children)


# Prefect logs a failed task or flow run's exception with its traceback: the command says the
# same in one line (maas.cli.common.handled), so these stay in the log file
RESTATED = ("prefect.flow_runs", "prefect.task_runs")


class TerminalFilter(logging.Filter):
    """maas's own records, and any other record at ERROR or above that no one restates."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == SHOWN or record.name.startswith(SHOWN + "."):
            return True
        return record.levelno >= logging.ERROR and not record.name.startswith(RESTATED)


class MaasHandler:
    """Marks the handlers set up here, so a second set-up (commands called in one process)
    replaces them instead of doubling every line."""


class TerminalHandler(logging.StreamHandler, MaasHandler):
    pass


class FileHandler(logging.FileHandler, MaasHandler):
    pass


def log_level(name: str) -> int:
    """A level name (DEBUG, INFO, WARNING, ERROR) as its number; a clear error otherwise."""
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ConfigError(f"log level {name!r}: use DEBUG, INFO, WARNING or ERROR (MAAS_LOG_LEVEL)")
    return level


def configure_logging(*, verbose: bool, level: str, log_file: Path) -> None:
    """The root logger's handlers: the log file at `level`, the terminal (stderr) with maas's
    own lines at `level` (every logger's with `verbose`). Python warnings become log records,
    so they follow the same rule. The file opens on its first record: a command that logs
    nothing writes nothing."""
    threshold = log_level(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, MaasHandler)]:
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    terminal = TerminalHandler()
    terminal.setLevel(threshold)
    terminal.setFormatter(formatter)
    if not verbose:
        terminal.addFilter(TerminalFilter())
    root.addHandler(terminal)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        written = FileHandler(log_file, delay=True)
    except OSError:  # a read-only folder: the terminal still says what matters
        pass
    else:
        written.setLevel(threshold)
        written.setFormatter(formatter)
        root.addHandler(written)
    root.setLevel(threshold)
    logging.captureWarnings(True)
    if "torch" in sys.modules:
        adopt_torch_loggers()


def adopt_torch_loggers() -> None:
    """torch gives each of its loggers a stderr handler of its own at import and stops their
    propagation (the ONNX exporter's warnings would print past the set-up here): import it,
    then those loggers get the handlers set up here instead. For the commands that train."""
    import torch  # noqa: F401  (its import sets up its loggers)

    ours = [h for h in logging.getLogger().handlers if isinstance(h, MaasHandler)]
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        torch_logger = name == "torch" or name.startswith("torch.")
        if torch_logger and isinstance(logger, logging.Logger) and logger.handlers:
            logger.handlers = list(ours)


def configure_from_environment() -> None:
    """configure_logging with the user's choice: `maas --verbose` / MAAS_VERBOSE=1,
    `maas --log-level` / MAAS_LOG_LEVEL (INFO), MAAS_LOG_FILE (.maas/logs/maas.log)."""
    configure_logging(
        verbose=os.environ.get("MAAS_VERBOSE", "") not in ("", "0", "false"),
        level=os.environ.get("MAAS_LOG_LEVEL") or "INFO",
        log_file=Path(os.environ.get("MAAS_LOG_FILE") or LOG_FILE),
    )
