"""`maas score`, local backend: a registered version over a table, in N worker processes.

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
from maas.scoring import worker
from maas.scoring.inputs import Unit, fingerprint, input_files, plan
from maas.scoring.lineage import record_job
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

    @property
    def records_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


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
) -> Summary:
    """Score every row of `input_uri` with `version` of the task's model into `output`
    (Parquet): the task's key columns and `columns` passed through, then the version's
    outputs, `unknown_inputs` and `model_version`."""
    started = time.perf_counter()
    if output.suffix != ".parquet":
        raise ScoringError(f"--output {output}: name a .parquet file")
    if output.exists() and not overwrite:
        raise ScoringError(f"--output {output} exists: choose another path or --overwrite")
    name = params.registry.model_name
    client = connect(params.registry)
    found = resolve_version(client, name, version)
    number = str(found.version)
    require_verdict(load_key(params.promotion.verdict_key_file), found)  # before any download
    parts = output.with_name(output.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    model_dir = download_serving_artifacts(client, found, parts / "model")
    context = download_serving_code(client, found, parts / "code")
    required = [field.name for field in request_spec(model_dir).fields if not field.optional]
    units, common = plan(input_files(input_uri), required)
    absent = [name for name in columns if name not in common]
    if absent:
        raise ScoringError(f"--columns {', '.join(absent)}: not a column of every input file")
    keys = [name for name in params.validation.unique_key if name in common]
    pass_through = list(dict.fromkeys([*keys, *columns]))
    job = fingerprint(number, units, pass_through)
    marker = parts / "job.json"
    if marker.is_file() and json.loads(marker.read_text()).get("job") != job:
        if not overwrite:
            raise ScoringError(
                f"{parts} holds a different job (another version or input): --overwrite "
                "starts again"
            )
        for stale in parts.glob("part-*"):
            stale.unlink()
    marker.write_text(json.dumps({"job": job, "version": number, "input": input_uri}))
    tasks = [
        _task(parts, number, model_dir, unit, index, pass_through)
        for index, unit in enumerate(units)
    ]
    todo = [task for task in tasks if not Path(task["done"]).is_file()]
    _run(
        context, todo, workers or os.cpu_count() or 1, len(tasks) - len(todo), len(tasks), progress
    )
    rows, errors = _merge(tasks, output, errors_path(output))
    shutil.rmtree(parts)
    summary = Summary(
        name,
        number,
        rows,
        errors,
        time.perf_counter() - started,
        output,
        errors_path(output) if errors else None,
        len(tasks) - len(todo),
    )
    job_record = {
        "version": number,
        "input": input_uri,
        "input_digest": job,
        "input_rows": str(sum(unit.rows for unit in units)),
        "output": str(output.resolve()),
        "backend": "local",
    }
    numbers = {
        "rows": rows,
        "errors": errors,
        "seconds": summary.seconds,
        "records_per_s": summary.records_per_s,
    }
    record_job(client, params.registry, job=job_record, metrics=numbers)
    log.info("score: %s v%s, %d rows, %d refused -> %s", name, number, rows, errors, output)
    return summary


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
) -> None:
    """Each task by one of `workers` long-lived child processes (the recorded code loaded
    once per process); the first failure stops the job (what is done stays done)."""
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
            env=child_environment(os.environ),
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
                    failures.append(f"{Path(task['source']).name}: {' '.join(tail[-3:])}")
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
    os.replace(partial, target)
    return rows
