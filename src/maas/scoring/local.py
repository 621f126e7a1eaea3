"""`maas score`: a registered version over a table, by the local backend (N worker
processes) or Spark (`maas.scoring.spark`).

The version is resolved once (a number or an alias) and its signed verdict verified before
anything of it is downloaded; its serving artifacts and recorded serving code are digest-
checked; each worker (`maas.scoring.worker`) runs that recorded code with an allowlisted
environment. Units (Parquet row groups) are scored into part files under `<output>.parts/`,
each written atomically, so a killed job started again skips the units already done. At the
end the parts become `<output>` (and the refused rows `<output>.errors.parquet`) in one
rename each; nothing half-written is ever at the output path.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.config import Params
from maas.errors import ScoringError
from maas.redact import redact_text
from maas.scoring import worker
from maas.scoring.inputs import Unit, fingerprint, input_files, plan
from maas.scoring.lineage import record_job
from maas.scoring.remote import is_uri, shown, storage_environment
from maas.serving.inference import request_spec
from maas.tracking.keyring import load_key
from maas.tracking.registry import (
    download_serving_artifacts,
    download_serving_code,
    resolve_version,
)
from maas.tracking.serving_code import child_environment
from maas.tracking.store import connect
from maas.tracking.verdict import require_verdict

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000  # records per ONNX call inside a unit
BACKENDS = ("local", "spark")


@dataclass(frozen=True)
class Summary:
    model: str
    version: str
    rows: int  # scored
    errors: int  # refused, with the reason, in `errors_file`
    seconds: float
    output: Path
    errors_file: Path | None
    resumed_units: int  # units a previous run of the same job had written

    logged: int = 0  # rows appended to the prediction log (--log-predictions)

    @property
    def records_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "records_per_s": round(self.records_per_s),
            "output": str(self.output),
            "errors_file": str(self.errors_file) if self.errors_file else None,
            "resumed_units": self.resumed_units,
            "logged": self.logged,
        }


def errors_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".parquet") + ".errors.parquet")


def score_table(
    params: Params,
    *,
    version: str,
    input_uri: str,
    output: Path,
    columns: tuple[str, ...] = (),
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: str = "local",
    master: str | None = None,
    log_predictions: bool = False,
) -> Summary:
    """Score every row of `input_uri` with `version` of the task's model into `output`
    (Parquet): the task's key columns and `columns` passed through, then the version's
    outputs, `unknown_inputs` and `model_version`. `backend` "spark" scores on Spark
    (`master`, default local[2]: maas.scoring.spark) into a Parquet folder of the same schema
    and values. `log_predictions`: the scored rows also go to the task's prediction log, as
    served ones (maas.scoring.predictions), for `maas monitor`."""
    started = time.perf_counter()
    if backend not in BACKENDS:
        raise ScoringError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if master is not None and backend != "spark":
        raise ScoringError("--master is for --backend spark")
    if is_uri(input_uri) and backend == "spark":
        raise ScoringError(
            f"--input {shown(input_uri)}: --backend spark reads local or shared-filesystem "
            "paths; score a URI with --backend local (or give Spark the files on a shared path)"
        )
    if input_uri.lower().startswith("memory://"):
        raise ScoringError("--input memory://: lives in this process only; workers cannot read it")
    if output.suffix != ".parquet":
        raise ScoringError(f"--output {output}: name a .parquet file")
    if output.exists() and not overwrite:
        raise ScoringError(f"--output {output} exists: choose another path or --overwrite")
    if backend == "spark":
        from maas.scoring.spark import spark_submit

        spark_submit()  # pyspark (or $SPARK_HOME) is there, before anything is downloaded
    name = params.registry.model_name
    client = connect(params.registry)
    found = resolve_version(client, name, version)
    number = str(found.version)
    require_verdict(load_key(params.promotion.verdict_key_file), found)  # before any download
    parts = output.with_name(output.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    model_dir = download_serving_artifacts(client, found, parts / "model")
    context = download_serving_code(client, found, parts / "code")
    spec = request_spec(model_dir)
    required = [field.name for field in spec.fields if not field.optional]
    units, common = plan(input_files(input_uri), required)
    absent = [name for name in columns if name not in common]
    if absent:
        raise ScoringError(f"--columns {', '.join(absent)}: not a column of every input file")
    keys = [name for name in params.validation.unique_key if name in common]
    pass_through = list(dict.fromkeys([*keys, *columns]))
    job = fingerprint(number, units, pass_through)
    resumed = 0
    if backend == "spark":
        from maas.scoring.spark import DEFAULT_MASTER, score_on_spark

        rows, errors = score_on_spark(
            master=master or DEFAULT_MASTER,
            version=number,
            model_dir=model_dir,
            context=context,
            units=units,
            pass_through=pass_through,
            output=output,
            errors_file=errors_path(output),
            batch_rows=BATCH_ROWS,
        )
        _place_spark(output, rows, errors)
    else:
        tasks = _resume(parts, job, input_uri, overwrite, number, model_dir, units, pass_through)
        todo = [task for task in tasks if not Path(task["done"]).is_file()]
        resumed = len(tasks) - len(todo)
        env = child_environment(os.environ) | storage_environment(input_uri, os.environ)
        _run(context, todo, workers or os.cpu_count() or 1, resumed, len(tasks), progress, env)
        rows, errors = _merge(tasks, output, errors_path(output))
    if not errors:
        _remove(errors_path(output))  # an earlier job's, overwritten: not this output's
    shutil.rmtree(parts)
    logged = 0
    if log_predictions:
        from maas.scoring.predictions import log_scored

        logged = log_scored(
            params,
            version=number,
            units=units,
            fields=spec.names,
            pass_through=pass_through,
            output=output,
            errors_file=errors_path(output) if errors else None,
        )
    summary = Summary(
        name,
        number,
        rows,
        errors,
        time.perf_counter() - started,
        output,
        errors_path(output) if errors else None,
        resumed,
        logged,
    )
    job_record = {
        "version": number,
        "input": shown(input_uri),  # without user:password@ or a ?query
        "input_digest": job,
        "input_rows": str(sum(unit.rows for unit in units)),
        "output": str(output.resolve()),
        "backend": backend if backend == "local" else f"spark {master or 'local[2]'}",
    }
    numbers = {
        "rows": rows,
        "errors": errors,
        "seconds": summary.seconds,
        "records_per_s": summary.records_per_s,
        "logged": logged,
    }
    record_job(client, params.registry, job=job_record, metrics=numbers)
    log.info("score: %s v%s, %d rows, %d refused -> %s", name, number, rows, errors, output)
    return summary


def _resume(
    parts: Path,
    job: str,
    input_uri: str,
    overwrite: bool,
    version: str,
    model_dir: Path,
    units: list[Unit],
    pass_through: list[str],
) -> list[dict[str, Any]]:
    """The local backend's tasks, one per unit; a previous run's parts of the same job stay
    (their markers say so), another job's are refused unless `overwrite`."""
    marker = parts / "job.json"
    if marker.is_file() and json.loads(marker.read_text()).get("job") != job:
        if not overwrite:
            raise ScoringError(
                f"{parts} holds a different job (another version or input): --overwrite "
                "starts again"
            )
        for stale in parts.glob("part-*"):
            stale.unlink()
    marker.write_text(json.dumps({"job": job, "version": version, "input": shown(input_uri)}))
    return [
        _task(parts, version, model_dir, unit, index, pass_through)
        for index, unit in enumerate(units)
    ]


def _place_spark(output: Path, rows: int, errors: int) -> None:
    """The Spark driver's folders (`.<name>.partial` beside each target) into place."""
    from maas.scoring.spark_job import partial_path

    if errors:
        place(partial_path(str(errors_path(output))), errors_path(output))
    if not rows and errors:
        raise ScoringError(
            f"no row could be scored: the {errors} reasons are in {errors_path(output)}"
        )
    place(partial_path(str(output)), output)


def place(partial: Path, target: Path) -> None:
    """`partial` (a file or a folder) renamed to `target`, replacing what is there: a file in
    one rename; a folder moved aside first (a rename cannot replace a folder)."""
    if target.is_dir() and not target.is_symlink():
        aside = target.with_name(f".{target.name}.replaced")
        _remove(aside)
        os.replace(target, aside)
        os.replace(partial, target)
        shutil.rmtree(aside)
    else:
        os.replace(partial, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _task(
    parts: Path, version: str, model_dir: Path, unit: Unit, index: int, pass_through: list[str]
) -> dict[str, Any]:
    return {
        "source": unit.source,
        "kind": unit.kind,
        "unit": unit.unit,
        "offset": unit.offset,
        "version": version,
        "model_dir": str(model_dir),
        "pass_through": pass_through,
        "batch_rows": BATCH_ROWS,
        "part": str(parts / f"part-{index:06d}.parquet"),
        "errors": str(parts / f"part-{index:06d}.errors.parquet"),
        "done": str(parts / f"part-{index:06d}.done"),
    }


def _run(
    context: Path,
    tasks: list[dict[str, Any]],
    workers: int,
    done: int,
    total: int,
    progress: Callable[[int, int], None] | None,
    env: dict[str, str],
) -> None:
    """Each task by one of `workers` long-lived child processes (the recorded code loaded
    once per process) with the environment `env`; the first failure stops the job (what is
    done stays done)."""
    pending: queue.Queue[dict[str, Any]] = queue.Queue()
    for task in tasks:
        pending.put(task)
    failures: list[str] = []
    lock = threading.Lock()
    count = [done]

    def serve() -> None:
        child = subprocess.Popen(
            [sys.executable, worker.__file__, str(context)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            while not failures:
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                child.stdin.write(json.dumps(task) + "\n")
                child.stdin.flush()
                if not child.stdout.readline():
                    tail = (child.stderr.read() if child.stderr else "").strip().splitlines()
                    reason = redact_text(f"{Path(task['source']).name}: {' '.join(tail[-3:])}")
                    failures.append(reason)
                    return
                with lock:
                    count[0] += 1
                    if progress is not None:
                        progress(count[0], total)
        finally:
            if child.stdin:
                child.stdin.close()
            child.wait(timeout=60)

    threads = [threading.Thread(target=serve) for _ in range(min(workers, max(1, len(tasks))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise ScoringError(f"scoring failed (units done so far are kept): {failures[0]}")


def _merge(tasks: list[dict[str, Any]], output: Path, errors_file: Path) -> tuple[int, int]:
    """The parts, in input order, into `errors_file` and `output` (each written whole, then
    renamed into place); (rows scored, rows refused)."""
    refused = _concat([Path(task["errors"]) for task in tasks], errors_file)
    scored = _concat([Path(task["part"]) for task in tasks], output)
    if not scored and refused:
        raise ScoringError(f"no row could be scored: the {refused} reasons are in {errors_file}")
    return scored, refused


def _concat(paths: list[Path], target: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [path for path in paths if path.is_file()]
    if not files:
        return 0
    schema = pa.unify_schemas([pq.read_schema(path) for path in files])
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    with pq.ParquetWriter(partial, schema) as writer:
        for path in files:
            table = pq.read_table(path)
            writer.write_table(table.select(schema.names).cast(schema))
            rows += table.num_rows
    place(partial, target)
    return rows
