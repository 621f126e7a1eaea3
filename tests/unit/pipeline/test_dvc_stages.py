"""`maas task init` writes the new task's DVC stages into dvc.yaml: the task file is the one
file a team edits, and DVC reads the stages (no output overlaps another stage's)."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from maas.cli import app
from tests.helpers import ROOT
from tests.unit.pipeline.test_profile import orders, write


def test_task_init_adds_the_tasks_stages_to_dvc_yaml(tmp_path: Path, monkeypatch) -> None:
    from dvc.repo import Repo

    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    (tmp_path / "params.tuned.hotel-rates.yaml").write_text("{}\n")  # deps of the examples'
    (tmp_path / "params.tuned.yaml").write_text("{}\n")
    data = write(tmp_path, orders())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "task",
            "init",
            "orders",
            "--data",
            str(data),
            "--label",
            "returned",
            "--time",
            "placed",
            "--exclude",
            "order_id",
            "-p",
            str(tmp_path / "params.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "evaluate-orders" in result.output
    text = (tmp_path / "dvc.yaml").read_text()
    assert "# The same stages as flows/training.py" in text  # the file's comments stay
    Repo.init(str(tmp_path), no_scm=True)
    with Repo(str(tmp_path)) as repo:
        stages = {stage.addressing: stage for stage in repo.index.stages}
        repo.index.graph  # noqa: B018  DVC refuses overlapping outputs here
    assert {
        "validate",
        "train-hotel-rates",
        "ingest-orders",
        "validate-orders",
        "train-orders",
        "evaluate-orders",
    } <= set(stages)
    assert stages["train-orders"].cmd == "maas stage train --task orders"
    assert [out.def_path for out in stages["ingest-orders"].outs] == ["data/orders/raw"]
    assert "orders.csv" in [dep.def_path for dep in stages["ingest-orders"].deps]  # its source
    again = CliRunner().invoke(
        app,
        [
            "task",
            "init",
            "orders",
            "--data",
            str(data),
            "--label",
            "returned",
            "--time",
            "placed",
            "--exclude",
            "order_id",
            "--force",
            "-p",
            str(tmp_path / "params.yaml"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert (tmp_path / "dvc.yaml").read_text().count("train-orders:") == 1  # replaced, not added


def test_task_init_refusals_are_named(tmp_path: Path) -> None:
    """An existing task without --force, a partition frequency maas does not know, and both
    --positive and --threshold: each one line naming what is wrong, exit 2, nothing written."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    data = write(tmp_path, orders())
    base = [
        "task",
        "init",
        "--data",
        str(data),
        "--label",
        "returned",
        "--time",
        "placed",
        "-p",
        str(tmp_path / "params.yaml"),
    ]
    cases = [
        (["hotel-rates"], "task 'hotel-rates' exists"),
        (["orders", "--partition", "fortnight"], "--partition 'fortnight'"),
        (["orders", "--positive", "1", "--threshold", "1"], "not both"),
        (["Orders"], "use lower-case letters"),
    ]
    before = sorted(p.name for p in (tmp_path / "tasks").iterdir())
    for extra, message in cases:
        result = CliRunner().invoke(app, [*base[:2], extra[0], *base[2:], *extra[1:]])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == before


def test_a_task_without_a_time_column_gets_stages_reading_its_split(tmp_path: Path) -> None:
    import yaml

    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    data = write(tmp_path, orders().drop(columns="placed"))
    result = CliRunner().invoke(
        app,
        ["task", "init", "orders", "--data", str(data), "--label", "returned"]
        + ["--key", "order_id", "-p", str(tmp_path / "params.yaml")],
    )
    assert result.exit_code == 0, result.output
    ingest = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["ingest-orders"]
    assert ingest["params"] == [{"tasks/orders.yaml": ["data.source", "data.split"]}]
    assert "src/maas/pipeline/data/key_hash.py" in ingest["deps"]
