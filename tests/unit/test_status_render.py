"""`maas status` in a narrow terminal or a pipe shows whole values, not columns cut to '…'."""

from __future__ import annotations

import io

from rich.console import Console

from maas.cli import render
from maas.operate.status import Status
from maas.tracking.versions import VersionRow

ACTOR = "a registry client of sqlite:////home/someone/project/.maas/mlflow.db"


def status() -> Status:
    row = VersionRow(
        "12",
        ["champion", "challenger"],
        "2026-11-30T02:59:19Z",
        "passed",
        "passed",
        "roc_auc",
        0.7005,
        0.7025,
        "0123456789abcdef",
    )
    event = {
        "ts": "2026-11-30T03:00:00Z",
        "event": "promoted",
        "version": "12",
        "actor": ACTOR,
        "reason": "champion set outside maas",
    }
    catalog = [
        {
            "model": name,
            "task": name,
            "kind": kind,
            "state": "serving",
            "served_version": "12",
            "champion_version": "12",
            "endpoint": f"http://127.0.0.1:3000/models/{name}",
            "deployed_at": "2026-11-30T03:00:05Z",
        }
        for name, kind in (("flight-delay", "binary"), ("hotel-rates", "regression"))
    ]
    return Status("flight-delay", "local", "127.0.0.1:3000", [row], None, [event], catalog)


def test_a_narrow_terminal_shows_each_row_as_lines_instead_of_cutting_cells(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=screen, width=60, force_terminal=True))
    render.print_status(status())
    text = screen.getvalue()
    assert "…" not in text
    assert "aliases: champion, challenger" in text and "run: 0123456789ab" in text
    assert f"who: {ACTOR}" in text
    assert "endpoint: http://127.0.0.1:3000/models/hotel-rates" in text  # every model served


def test_a_wide_terminal_gets_the_table(monkeypatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=screen, width=200, force_terminal=True))
    render.print_status(status())
    header = next(line for line in screen.getvalue().splitlines() if "linear baseline" in line)
    assert "version" in header and "aliases" in header


def test_a_pipe_gets_whole_rows(monkeypatch, capsys) -> None:
    monkeypatch.setattr(render, "out", Console(file=io.StringIO(), width=80))  # not a terminal
    render.print_status(status())
    lines = capsys.readouterr().out.splitlines()
    assert any(ACTOR in line and "promoted" in line for line in lines)
    assert any("0123456789ab" in line and "champion, challenger" in line for line in lines)


def test_recent_batch_jobs_are_listed(monkeypatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=screen, width=200, force_terminal=True))
    job = {"version": "12", "rows": 1_000_000.0, "errors": 3.0, "records_per_s": 41_000.0}
    shown = status()
    shown.scoring.append({**job, "output": "/data/scored/tomorrow.parquet"})
    render.print_status(shown)
    text = screen.getvalue()
    assert "batch jobs" in text and "/data/scored/tomorrow.parquet" in text
    assert "1,000,000" in text and "41,000" in text
