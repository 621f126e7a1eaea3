"""Fixtures of the pipeline's unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.fixture()
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project of its own: params.yaml and tasks/ copied, the working folder (a test module
    may define its own `project`)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    return tmp_path
