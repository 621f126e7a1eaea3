"""`maas score --backend spark`: the same scoring as the local backend, by Spark.

The job is prepared here as for the local backend (`maas.scoring.local.score_table`: the
version's signed verdict verified, its serving files and recorded serving code downloaded and
digest-checked, the input planned into units). Then `spark-submit` runs the driver script
(`maas.scoring.spark_job`) with an allowlisted environment: no gate key reaches the driver,
its JVM or the executors, which inherit theirs. The driver ships the verified folders to the
executors (`SparkContext.addFile`) and scores with `mapInArrow`, one task per core (a
contiguous run of units each) and one ONNX session per partition, by `maas.scoring.worker` —
the function the local workers run.

Its inputs are local or shared-filesystem paths: a URI input (`s3://...`) is refused before
anything is downloaded (`maas.scoring.local`). Imported only when the Spark backend is
chosen; pyspark is the `spark` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from maas.errors import ScoringError
from maas.redact import secret_name
from maas.scoring import spark_job, worker
from maas.scoring.inputs import Unit
from maas.tracking.serving_code import child_environment

DEFAULT_MASTER = "local[2]"
# what spark-submit, its JVM and Python need beyond `child_environment`'s allowlist
SPARK_ENV = ("JAVA_HOME", "SPARK_HOME", "SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR")
SPARK_ENV_PREFIXES = ("PYSPARK_", "SPARK_LOCAL_")
TIMEOUT_S = 24 * 3600


def spark_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The driver's environment: the recorded-code child's allowlist, Spark's own variables
    (no secret-looking name), and this Python for the driver and workers unless set."""
    env = child_environment(environ)
    env.update(
        (name, value)
        for name, value in environ.items()
        if (name in SPARK_ENV or name.startswith(SPARK_ENV_PREFIXES)) and not secret_name(name)
    )
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", env["PYSPARK_PYTHON"])
    return env


def spark_submit() -> Path:
    """$SPARK_HOME's spark-submit, else the one the pyspark package ships."""
    home = os.environ.get("SPARK_HOME")
    if home:
        command = Path(home) / "bin" / "spark-submit"
    else:
        found = find_spec("pyspark")
        if found is None or found.origin is None:
            raise ScoringError("--backend spark needs pyspark: pip install 'maas[spark]'")
        command = Path(found.origin).parent / "bin" / "spark-submit"
    if not command.is_file():
        raise ScoringError(f"--backend spark: {command} not found (check $SPARK_HOME)")
    return command


def score_on_spark(
    *,
    master: str,
    version: str,
    model_dir: Path,
    context: Path,
    units: list[Unit],
    pass_through: list[str],
    output: Path,
    errors_file: Path,
    batch_rows: int,
) -> tuple[int, int]:
    """Score `units` by spark-submit into Parquet folders beside `output` and `errors_file`
    (`spark_job.partial_path`: the caller renames them into place); (rows scored, refused)."""
    with tempfile.TemporaryDirectory(prefix="maas-spark-") as tmp:
        job: dict[str, Any] = {
            "worker": worker.__file__,
            "version": version,
            "model_dir": str(model_dir.resolve()),
            "model_digests": worker.file_digests(model_dir),
            "code_dir": str(context.resolve()),
            "code_digests": worker.file_digests(context),
            "units": [asdict(unit) for unit in units],
            "pass_through": pass_through,
            "batch_rows": batch_rows,
            "output": str(output.resolve()),
            "errors": str(errors_file.resolve()),
            "result": str(Path(tmp) / "result.json"),
        }
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job))
        log_file = Path(tmp) / "spark.log"
        command = [
            str(spark_submit()),
            "--master",
            master,
            "--conf",
            "spark.ui.showConsoleProgress=false",
            "--conf",
            "spark.ui.enabled=false",
            spark_job.__file__,
            str(job_file),
        ]
        with log_file.open("w") as log:
            try:
                done = subprocess.run(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=spark_environment(os.environ),
                    timeout=TIMEOUT_S,
                    check=False,
                )
            except OSError as error:
                raise ScoringError(f"--backend spark: {command[0]}: {error}") from None
        result_file = Path(job["result"])
        if done.returncode != 0 or not result_file.is_file():
            raise ScoringError(f"the Spark job failed: {_reason(log_file.read_text())}")
        result = json.loads(result_file.read_text())
        return int(result["rows"]), int(result["errors"])


def _reason(log: str) -> str:
    """The most telling line of a failed driver's log."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for marker in ("RuntimeError:", "Error:", "Exception:"):
        found = [line for line in lines if marker in line]
        if found:
            return found[-1][:500]
    return (lines[-1] if lines else "no output")[:500]
