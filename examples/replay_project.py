"""What the replay examples share: a fresh project folder holding the repository's params and
task files, a free address for its gateway, and `maas` run in it as a user would run it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from maas.net import free_port

ROOT = Path(__file__).resolve().parents[1]


def new_project(workdir: Path) -> str:
    """`workdir` emptied and made a project (params.yaml, tasks/); the base URL its gateway
    will answer at (a free port on loopback)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", workdir / "params.yaml")
    shutil.copytree(ROOT / "tasks", workdir / "tasks")
    return f"http://127.0.0.1:{free_port()}"


def maas(workdir: Path, *args: str) -> str:
    """`maas ARGS -p workdir/params.yaml` in `workdir`; its output, or exit with its tail."""
    command = [sys.executable, "-m", "maas.cli", *args, "-p", str(workdir / "params.yaml")]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        raise SystemExit(f"maas {' '.join(args)} failed:\n{tail}")
    return done.stdout
