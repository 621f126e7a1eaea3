"""A first run reads clean (issue 28 item 6): `maas task init` and `maas task list` in a new
project, run as a user runs them (a subprocess, output piped), print their own lines only: no
library warnings, no MLflow database set-up, no lines wrapped at 80 columns. Those records go
to the log file at the level asked for, and `maas --verbose` shows them at the terminal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DB_SETUP = "Creating initial MLflow database tables"


def maas(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAAS_"))}
    env.pop("COLUMNS", None)
    done = subprocess.run(
        [sys.executable, "-m", "maas.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new project with one task made by `maas task init` from a small table."""
    root = tmp_path_factory.mktemp("clean-output")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "day": pd.date_range("2024-01-01", periods=n, freq="12h").strftime("%Y-%m-%d"),
            "shop_with_a_rather_long_descriptive_column_name": rng.choice(["a", "b", "c"], n),
            "basket": rng.gamma(2.0, 20.0, n).round(2),
            "returned": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )
    frame.to_csv(root / "orders.csv", index=False)
    made = maas(
        root,
        "task",
        "init",
        "returns",
        "--data",
        "orders.csv",
        "--label",
        "returned",
        "--time",
        "day",
        "--positive",
        "yes",
    )
    (root / "init.out").write_text(made.stdout)
    (root / "init.err").write_text(made.stderr)
    return root


def test_task_init_prints_its_own_lines_whole(project: Path) -> None:
    stdout, stderr = (project / "init.out").read_text(), (project / "init.err").read_text()
    assert stderr == "", stderr  # no warnings, no progress bars
    lines = stdout.splitlines()
    assert lines[0].startswith("wrote ") and lines[-1] == "next: maas run --task returns"
    assert all(line.startswith(("wrote", "  - ", "next:")) for line in lines), stdout
    assert any(len(line) > 80 for line in lines), stdout  # piped: not wrapped at 80 columns


def test_task_list_prints_the_table_and_nothing_else(project: Path) -> None:
    shutil.rmtree(project / ".maas", ignore_errors=True)  # a store made by this very command
    listed = maas(project, "task", "list")
    assert listed.stderr == "", listed.stderr
    assert DB_SETUP not in listed.stdout
    assert listed.stdout.splitlines()[0].startswith("┏") and "returns" in listed.stdout


def test_the_log_file_and_verbose_get_what_the_terminal_does_not(project: Path) -> None:
    shutil.rmtree(project / ".maas", ignore_errors=True)
    quiet = maas(project, "--log-level", "DEBUG", "task", "list")
    assert quiet.stderr == "", quiet.stderr[:2000]
    assert DB_SETUP in (project / ".maas" / "logs" / "maas.log").read_text()
    shutil.rmtree(project / ".maas")
    loud = maas(project, "--verbose", "--log-level", "DEBUG", "task", "list")
    assert DB_SETUP in loud.stderr
