"""The Spark backend's driver, run by `spark-submit` (`maas.scoring.spark`; on a cluster, the
same command with another `--master`: docs/scoring.md): `spark-submit spark_job.py job.json`.

It imports nothing of the installed maas: `maas.scoring.worker` is loaded from its file and
shipped to the executors by value (cloudpickle), so they run it without any maas of their own
and import `maas.serving` only from the verified serving code this driver ships them with the
serving files (`SparkContext.addFile`), each checked against the digests in the job. One Spark
task per core, each a contiguous run of units (row groups or CSV files) in input order;
`mapInArrow` hands Arrow batches to the worker and takes Arrow batches back, so no pandas
conversion touches a value. Spark writes the scored rows and each task its own refused ones
(one Spark write: the scored frame is neither persisted nor read twice), as two Parquet folders
beside the output (`.<name>.partial`), which `maas.scoring.local` then renames into place; the
result file gives their row counts, read from the part files' footers.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

WORKER_MODULE = "maas_scoring_worker"  # not under maas: executors never import it by name


def load_worker(path: str) -> ModuleType:
    """`maas.scoring.worker` from its file, registered to be pickled by value."""
    from pyspark import cloudpickle

    spec = importlib.util.spec_from_file_location(WORKER_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[WORKER_MODULE] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module


def partial_path(target: str) -> Path:
    path = Path(target)
    return path.with_name(f".{path.name}.partial")


def written_rows(folder: Path) -> int:
    """The rows of a Parquet folder Spark wrote, from its part files' footers (no Spark job)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(part).num_rows for part in sorted(folder.glob("part-*")))


def run(job: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    worker = load_worker(job["worker"])
    code_dir, model_dir = Path(job["code_dir"]), Path(job["model_dir"])
    sys.dont_write_bytecode = True  # no compiled file of this driver's goes out with the code
    worker.load_recorded(code_dir, job["code_digests"])  # the output's schema, from the service
    scorer = worker.Scorer(model_dir, job["version"], job["model_digests"])
    first = job["units"][0]
    passed = job["pass_through"]
    through = worker.read_unit(first["source"], first["unit"], first["kind"]).select(passed)
    spark_schema = from_arrow_schema(scorer.output_schema(through.schema))
    refused = pa.schema(  # as the local backend writes its refused rows
        [*map(worker.plain_field, through.schema), ("row", pa.int64()), ("error", pa.string())]
    )

    spark = SparkSession.builder.appName(f"maas score v{job['version']}").getOrCreate()
    context = spark.sparkContext
    context.setLogLevel("ERROR")
    context.addFile(str(code_dir), recursive=True)
    context.addFile(str(model_dir), recursive=True)
    output, errors_out = partial_path(job["output"]), partial_path(job["errors"])
    shutil.rmtree(errors_out, ignore_errors=True)  # an earlier attempt's parts
    errors_out.mkdir(parents=True)
    shipped = {
        "version": job["version"],
        "pass_through": passed,
        "batch_rows": job["batch_rows"],
        "code_name": code_dir.name,
        "code_digests": job["code_digests"],
        "model_name": model_dir.name,
        "model_digests": job["model_digests"],
        "output": to_arrow_schema(spark_schema).serialize().to_pybytes().hex(),  # Spark's own
        "refused": refused.serialize().to_pybytes().hex(),
        "errors_dir": str(errors_out),
    }
    units = [(json.dumps(unit),) for unit in job["units"]]
    # one task per core (spark.default.parallelism when set), each a contiguous run of units in
    # input order: a task's fixed cost (its Python worker's first use, the ONNX session) paid
    # once per core, not once per unit (docs/scoring.md, "Where the time goes")
    slices = min(len(units), max(1, context.defaultParallelism))
    tasks = spark.createDataFrame(context.parallelize(units, slices), "unit string")
    scored = tasks.mapInArrow(functools.partial(worker.score_partition, job=shipped), spark_schema)
    try:
        scored.write.mode("overwrite").parquet(output.as_uri())  # the one job: scores, refuses
    except BaseException:  # a failed job leaves nothing beside the output either
        for folder in (output, errors_out):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        spark.stop()
    rows, errors = written_rows(output), written_rows(errors_out)
    for folder, count in ((output, rows), (errors_out, errors)):
        if not count:  # as if never written: the caller places only a side with rows
            shutil.rmtree(folder)
    return {"rows": rows, "errors": errors}


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    job = json.loads(Path(sys.argv[1]).read_text())
    result = run(job)
    Path(job["result"]).write_text(json.dumps(result))
