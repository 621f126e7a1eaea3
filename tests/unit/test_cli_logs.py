"""What reaches the terminal (maas.cli.logs, maas.cli.common): maas's own lines and errors no
one restates; library lines only in the log file, or with --verbose; an error message printed
as written (brackets are text, not Rich markup)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from maas.cli import common, logs
from maas.errors import MaasError


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "message", None, None)


@pytest.mark.parametrize(
    ("name", "level", "shown"),
    [
        ("maas.pipeline.stages", logging.INFO, True),
        ("maas", logging.WARNING, True),
        ("maasive", logging.INFO, False),  # another package whose name starts the same
        ("py.warnings", logging.WARNING, False),
        ("mlflow.store.db.utils", logging.INFO, False),
        ("prefect.task_runs", logging.ERROR, False),  # the command says it in one line
        ("sqlalchemy.engine", logging.ERROR, True),
    ],
)
def test_the_terminal_shows_maas_lines_and_errors(name: str, level: int, shown: bool) -> None:
    assert logs.TerminalFilter().filter(record(name, level)) is shown


def test_the_log_file_gets_every_line_at_the_level_asked(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    log_file = tmp_path / "logs" / "maas.log"
    try:
        logs.configure_logging(verbose=False, level="WARNING", log_file=log_file)
        logs.configure_logging(verbose=False, level="DEBUG", log_file=log_file)  # replaces
        assert sum(isinstance(h, logs.MaasHandler) for h in root.handlers) == 2
        logging.getLogger("some.library").debug("library detail")
        for handler in root.handlers:
            handler.flush()
        assert log_file.read_text().count("library detail") == 1
        with pytest.raises(MaasError, match="log level 'loud'"):
            logs.configure_logging(verbose=False, level="loud", log_file=log_file)
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logs.MaasHandler)]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(before[0])
        logging.captureWarnings(False)


def test_an_error_prints_its_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    console = common.make_console(stderr=True)
    original, common.console = common.console, console
    try:
        common.fail(MaasError("partition 2019: column=Weekend [block]: observed bool"))
    finally:
        common.console = original
    assert "column=Weekend [block]: observed bool" in capsys.readouterr().err


def test_piped_output_is_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert common.make_console().width == common.PIPED_WIDTH  # pytest captures: not a terminal
