"""The training progress bar on an interactive terminal (silent in logs, CI and other ranks)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def epoch_progress(total: int, show: bool = True) -> Iterator[Callable[[dict[str, float]], None]]:
    """A rich progress bar over epochs on an interactive terminal when `show`; silent otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=True, disable=not (show and sys.stderr.isatty())) as progress:
        task = progress.add_task("epochs", total=total, status="")

        def advance(metrics: dict[str, float]) -> None:
            status = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("val_"))
            progress.update(task, advance=1, status=status)

        yield advance
