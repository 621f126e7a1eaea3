"""Pipeline tax: `maas run` against a plain script doing the same data work and training.

Both run as fresh processes on copies of the same project (params.yaml + data/raw), one
after the other:

- ours: `maas run --json` — Prefect flow (temporary API server), Great Expectations
  validation of every partition, MLflow run + registration, the promotion gate.
- plain: this file with `--plain`: the same maas functions for the work itself (read the
  partitions, label, write the windows; fit preprocessing and the network, export ONNX;
  evaluate against the baselines) with no Prefect, no MLflow and no Great Expectations.

overhead = (ours − plain) / ours: what orchestration, tracking and validation add to a run.
Ours runs twice: the first run on a new project, then the next run as a schedule would start
it with no new month (every partition then comes from the validation cache).
Validation = the GX import (a fresh process) + the suite on every partition, as a share of
ours. The same suite is also timed against the same checks written in plain pandas on the
full year (they must agree on every failing check).

    python benchmarks/pipeline.py [--task NAME] [--set key=value ...]
        [--output reports/benchmarks/pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from maas.config.kinds import SCORE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# Both sides train the MLP: this measures the pipeline around the training, and the flight-delay
# task's TabM takes ~11 minutes per epoch on 2 CPU cores (README, model quality).
MODEL = ["model.kind=mlp"]


def make_project(where: Path, raw_dir: Path, task: str | None = None) -> Path:
    """A new project folder: params.yaml, the task files, `raw_dir`'s partitions as the task's
    raw data."""
    from maas.config import read_raw

    where.mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", where / "params.yaml")
    shutil.copytree(ROOT / "tasks", where / "tasks")
    shutil.copytree(raw_dir, where / read_raw(where / "params.yaml", task)["data"]["raw_dir"])
    return where


def set_flags(task: str | None, overrides: Sequence[str]) -> list[str]:
    """`--task NAME --set a=b ...` for a command line."""
    flags = ["--task", task] if task else []
    return flags + [arg for item in overrides for arg in ("--set", item)]


def run_ours(
    project: Path, task: str | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own SQLite registry
    env.pop("PREFECT_API_URL", None)  # a temporary server, as `make run` on a fresh machine
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "maas"), "run", "--json", *set_flags(task, [*MODEL, *overrides])],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"maas run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    result = json.loads(line)
    return {"wall_s": wall, "stages_s": result["timings"], "result": result}


def run_plain(
    project: Path, task: str | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    started = time.perf_counter()
    flags = set_flags(task, overrides)
    done = subprocess.run(
        [sys.executable, __file__, "--plain", str(project), *flags], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"plain pipeline failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(done.stdout.splitlines()[-1])}


def plain_pipeline(project: Path, task: str | None, overrides: list[str]) -> None:
    """The baseline: the same work as `maas run`, with nothing around it (prints JSON)."""
    t0 = time.perf_counter()
    os.chdir(project)
    from maas.config import load_params
    from maas.pipeline import stages
    from maas.pipeline.data import windows
    from maas.pipeline.data.partitions import (
        add_label,
        read_partition,
        split_partitions,
        task_partitions,
    )

    params = load_params("params.yaml", [*MODEL, *overrides], task)
    data = params.data
    t1 = time.perf_counter()
    train_parts, test_parts = split_partitions(
        task_partitions(data),
        data.test_partitions,
        data.max_train_partitions,
    )
    data.processed_dir.mkdir(parents=True, exist_ok=True)
    for parts, name in ((train_parts, windows.TRAIN_FILE), (test_parts, windows.TEST_FILE)):
        window = pd.concat([read_partition(p).assign(partition=p.name) for p in parts])
        window = add_label(window, data.label)
        window.to_parquet(data.processed_dir / name, index=False)
    lineage = {
        "train_partitions": {p.name: "" for p in train_parts},
        "test_partitions": {p.name: "" for p in test_parts},
        "validation_status": "none",
    }
    (data.processed_dir / windows.LINEAGE_FILE).write_text(json.dumps(lineage))
    t2 = time.perf_counter()
    stages.train_model(
        data=data,
        features=params.features,
        model=params.model,
        train=params.train,
        request=params.request,
    )
    t3 = time.perf_counter()
    train = params.train
    metrics = stages.evaluate_model(
        data=data,
        train=train,
        evaluate=params.evaluate,
        promotion=params.promotion,
        registry=None,
    )
    t4 = time.perf_counter()
    print(
        json.dumps(
            {
                "steps_s": {
                    "imports": t1 - t0,
                    "data": t2 - t1,
                    "train": t3 - t2,
                    "evaluate": t4 - t3,
                },
                "test_score": metrics.test[SCORE[metrics.kind]],
            }
        )
    )


def pandas_checks(batch: pd.DataFrame, params: Any) -> set[str]:
    """The suite's checks in plain pandas on one prepared batch; returns the failing ones."""
    from maas.pipeline.validation.batch import (
        DATE_COLUMN,
        LABEL_COLUMN,
        PARTITION_COLUMN,
        clock_minutes_column,
        clock_part_column,
        derived_columns,
    )

    failed: set[str] = set()
    kinds = {"int": "iu", "float": "iuf"}
    for column, kind in params.columns.items():
        if column not in batch:
            failed.add(f"exist:{column}")
            continue
        values = batch[column]
        if kind == "str":
            ok = values.dropna().map(type).eq(str).all()
        else:
            ok = values.dtype.kind in kinds[kind]
        if not ok:
            failed.add(f"type:{column}")
    expected = {*params.columns, *derived_columns(params)}
    if set(batch.columns) != expected:
        failed.add("columns_match_set")
    for column, values in params.domains.items():
        if not batch[column].dropna().isin(values).all():
            failed.add(f"in_set:{column}")
    for column, regex in params.patterns.items():
        if not batch[column].dropna().astype(str).str.match(regex).all():
            failed.add(f"regex:{column}")
    for rule in params.ranges:
        present = batch[rule.column].dropna()
        if present.dtype.kind not in "iuf":  # GX fails the expectation on non-numbers
            failed.add(f"between:{rule.column}:{rule.mostly}")
            continue
        inside = present.between(rule.min, rule.max).mean() if len(present) else 1.0
        if inside < (rule.mostly or 1.0):
            failed.add(f"between:{rule.column}:{rule.mostly}")
    for band in params.distributions:
        values = batch[band.column].dropna()
        stat = values.mean() if band.stat == "mean" else values.std()
        if not band.min <= stat <= band.max:
            failed.add(f"{band.stat}:{band.column}")
    for null_rule in params.not_null:
        if batch[null_rule.column].notna().mean() < null_rule.mostly:
            failed.add(f"not_null:{null_rule.column}:{null_rule.mostly}")
    if not params.row_count.min <= len(batch) <= params.row_count.max:
        failed.add("row_count")
    rate = params.label_rate
    if rate is not None and not rate.min <= batch[LABEL_COLUMN].mean() <= rate.max:
        failed.add("label_rate")
    if params.unique_key and batch.duplicated(params.unique_key).any():
        failed.add("unique_key")
    for column in params.clock_times:
        if not batch[clock_minutes_column(column)].dropna().between(0, 59).all():
            failed.add(f"clock:{column}")
    for column in params.clock_parts:
        if not batch[clock_part_column(column)].dropna().eq(1.0).all():
            failed.add(f"clock_part:{column}")
    if not batch[PARTITION_COLUMN].dropna().eq(1.0).all():
        failed.add("in_partition")
    if batch[DATE_COLUMN].isna().any():
        failed.add("time_not_null")
    return failed


def gx_vs_pandas(raw_dir: Path, task: str | None, overrides: list[str]) -> dict[str, Any]:
    """The validation suite (GX) and the same checks in pandas, on every partition."""
    import_s = fresh_import_seconds("great_expectations")
    from maas.config import load_params
    from maas.pipeline.data.partitions import read_partition, task_partitions
    from maas.pipeline.validation.batch import prepare_batch
    from maas.pipeline.validation.run import validate_partitions

    params = load_params(ROOT / "params.yaml", overrides, task)
    data = params.data.model_copy(update={"raw_dir": raw_dir})
    frames = [(p, read_partition(p)) for p in task_partitions(data)]
    rows = sum(len(f) for _, f in frames)
    validate_partitions(frames[:1], params.validation, params.data)  # warm: imports, first use
    started = time.perf_counter()
    report = validate_partitions(frames, params.validation, params.data)
    gx_s = time.perf_counter() - started
    started = time.perf_counter()
    pandas_failed = 0
    for partition, frame in frames:
        batch = prepare_batch(frame, params.validation, params.data, partition)
        pandas_failed += len(pandas_checks(batch, params.validation))
    pandas_s = time.perf_counter() - started
    gx_failed = sum(1 for o in report.outcomes if not o.success)
    return {
        "partitions": len(frames),
        "rows": rows,
        "expectations_per_partition": len(report.outcomes) // max(1, len(frames)),
        "gx_import_s": import_s,
        "gx_suite_s": gx_s,
        "pandas_s": pandas_s,
        "gx_failed_checks": gx_failed,
        "pandas_failed_checks": pandas_failed,
        "ratio_gx_vs_pandas": gx_s / pandas_s,
    }


def fresh_import_seconds(module: str) -> float:
    """Seconds a fresh interpreter spends importing `module` (minus a bare start)."""
    timings = []
    for code in ("pass", f"import {module}"):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        timings.append(time.perf_counter() - started)
    return timings[1] - timings[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="a.b=value, both sides"
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="run ours in this (new) folder and keep it: trained + registered",
    )
    parser.add_argument("--plain", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain is not None:
        plain_pipeline(args.plain, args.task, args.overrides)
        return {}
    if not any(args.raw_dir.glob("*.parquet")):
        sys.exit(f"no partitions in {args.raw_dir}: run `maas ingest` first")
    task, overrides = args.task, args.overrides
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_plain(make_project(Path(tmp) / "plain", args.raw_dir, task), task, overrides)
        ours_project = make_project(args.keep or Path(tmp) / "ours", args.raw_dir, task)
        ours = run_ours(ours_project, task, overrides)
        # the next scheduled run with no new month: every partition was validated already
        rerun = run_ours(ours_project, task, overrides)
    validation = gx_vs_pandas(args.raw_dir, task, overrides)
    plain_data_s = plain["steps_s"]["data"]
    # ours' validate stage = read + GX + write the windows; the plain script did read + write
    validation_s = max(0.0, ours["stages_s"]["validate"] - plain_data_s)
    overhead = (ours["wall_s"] - plain["wall_s"]) / ours["wall_s"]
    rerun_validation_s = max(0.0, rerun["stages_s"]["validate"] - plain_data_s)
    metrics = ours["result"]["metrics"]
    metric = SCORE[metrics["kind"]]  # the task kind's score: binary ROC AUC, regression R²
    result = {
        "model": ours["result"]["registered"]["name"],
        "ours_wall_s": ours["wall_s"],
        "ours_stages_s": ours["stages_s"],
        "ours_outside_stages_s": ours["wall_s"] - sum(ours["stages_s"].values()),
        "plain_wall_s": plain["wall_s"],
        "plain_steps_s": plain["steps_s"],
        "overhead_share": overhead,
        "validation_s": validation_s,
        "validation_share": validation_s / ours["wall_s"],
        "gx_vs_pandas": validation,
        "rerun_wall_s": rerun["wall_s"],
        "rerun_stages_s": rerun["stages_s"],
        "rerun_overhead_share": (rerun["wall_s"] - plain["wall_s"]) / rerun["wall_s"],
        "rerun_validation_s": rerun_validation_s,
        "rerun_validation_share": rerun_validation_s / rerun["wall_s"],
        "metric": metric,
        "test_score": {"ours": metrics["test"][metric], "plain": plain["test_score"]},
        "quality": {
            "maas_mlp": metrics["test"][metric],
            **{k: v[metric] for k, v in metrics["baselines"].items()},
        },
    }
    print_report(result)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1, default=float))
    return result


def print_report(result: dict[str, Any]) -> None:
    stages, steps = result["ours_stages_s"], result["plain_steps_s"]
    print(
        f"maas run          {result['ours_wall_s']:6.1f} s  stages: "
        + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        + f"; outside stages {result['ours_outside_stages_s']:.1f}"
    )
    print(
        f"plain script      {result['plain_wall_s']:6.1f} s  steps: "
        + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
    )
    print(f"overhead          {100 * result['overhead_share']:5.1f}% of the run (goal <= 10%)")
    print(
        f"validation        {result['validation_s']:5.1f} s = "
        f"{100 * result['validation_share']:.1f}% of the run (goal <= 5%)"
    )
    print(
        f"re-run (all partitions validated before): {result['rerun_wall_s']:.1f} s, validation "
        f"{result['rerun_validation_s']:.1f} s = {100 * result['rerun_validation_share']:.1f}%, "
        f"overhead {100 * result['rerun_overhead_share']:.1f}%"
    )
    v = result["gx_vs_pandas"]
    print(
        f"GX suite ({v['expectations_per_partition']} expectations x {v['partitions']} "
        f"partitions, {v['rows']:,} rows): {v['gx_suite_s']:.2f} s + import "
        f"{v['gx_import_s']:.1f} s; pandas: {v['pandas_s']:.3f} s; "
        f"{v['ratio_gx_vs_pandas']:.0f}x; failing checks GX {v['gx_failed_checks']} / "
        f"pandas {v['pandas_failed_checks']}"
    )
    quality = ", ".join(f"{k} {x:.4f}" for k, x in result["quality"].items())
    print(f"test {result['metric']}: {quality}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1:])
