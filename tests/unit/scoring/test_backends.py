"""What both backends share before any row is scored: the backend and master asked for are
checked first; the process that scores imports `maas.serving` only from the verified recorded
code (even after another maas was imported), and refuses a copy whose files differ; the Spark
driver gets no secret of this process's environment (issue 31, docs/security.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from maas.errors import ScoringError
from maas.scoring.local import score_table
from maas.scoring.spark import spark_environment
from maas.scoring.worker import file_digests


def test_an_unknown_backend_a_stray_master_or_no_spark_is_refused_first(
    tmp_path, small_params, monkeypatch
) -> None:
    output = tmp_path / "out.parquet"
    with pytest.raises(ScoringError, match="--backend dask: choose one of local, spark"):
        score_table(small_params, version="1", input_uri="x", output=output, backend="dask")
    with pytest.raises(ScoringError, match="--master is for --backend spark"):
        score_table(small_params, version="1", input_uri="x", output=output, master="local[2]")
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "no-spark"))
    with pytest.raises(ScoringError, match="spark-submit not found .check .SPARK_HOME."):
        score_table(small_params, version="1", input_uri="x", output=output, backend="spark")
    assert not list(tmp_path.iterdir())  # nothing downloaded, nothing written


def recorded_copy(root: Path) -> Path:
    """A stand-in for a version's recorded serving code: maas/serving/inference.py."""
    (root / "maas" / "serving").mkdir(parents=True)
    (root / "maas" / "__init__.py").write_text("")
    (root / "maas" / "serving" / "__init__.py").write_text("")
    (root / "maas" / "serving" / "inference.py").write_text("RECORDED = True\n")
    return root


LOAD = """
import sys
from pathlib import Path
import maas.serving.inference  # the installed copy, imported first
from maas.scoring.worker import load_recorded, file_digests
root = Path(sys.argv[1])
load_recorded(root, file_digests(root) if sys.argv[2] == "same" else {"x": "y"})
import maas.serving.inference as inference
print(inference.RECORDED, inference.__file__)
"""


def test_the_recorded_code_is_imported_never_the_installed_copy(tmp_path) -> None:
    root = recorded_copy(tmp_path / "code")
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(root), "same"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str(root / "maas" / "serving" / "inference.py")]
    changed = subprocess.run(
        [sys.executable, "-c", LOAD, str(root), "other"], capture_output=True, text=True
    )
    assert changed.returncode != 0
    assert "differs from the verified one" in changed.stderr
    assert set(file_digests(root)) == {
        "maas/__init__.py",
        "maas/serving/__init__.py",
        "maas/serving/inference.py",
    }


def test_the_spark_driver_gets_no_secret_and_this_python() -> None:
    env = spark_environment(
        {
            "PATH": "/usr/bin",
            "MAAS_GATE_KEY": "k",
            "MLFLOW_TRACKING_PASSWORD": "p",
            "AWS_SECRET_ACCESS_KEY": "s",
            "JAVA_HOME": "/usr/lib/jvm/java-17",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_SUBMIT_TOKEN": "t",
        }
    )
    assert env["JAVA_HOME"] == "/usr/lib/jvm/java-17" and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    assert not {"MAAS_GATE_KEY", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert "PYSPARK_SUBMIT_TOKEN" not in env
