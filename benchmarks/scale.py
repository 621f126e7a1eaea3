"""Cost growth with data: `maas run` on the task's partitions replicated to k times their rows.

For each size (a factor of the raw data's rows; benchmarks/scale_data.py replicates them with
realistic noise, same partitions, new keys), a new project runs the real pipeline,
`maas run --json --set model.kind=mlp`, with a fixed number of epochs (no early stop), in a
fresh process. That process marks when each stage starts and ends (maas.clock.timed, which the
flow times its stages with, and a few stage functions wrapped to time themselves: the GX
suite, drift, the network's fit, the baselines); this one samples the RSS of its process tree
(every process summed, children included: Prefect's temporary server) every 0.1 s. Per stage:
wall time and the peak RSS of the tree while it ran; per size: the whole run and the exact
peak RSS of the largest single process (the kernel's high-water mark, VmHWM). Growth: each
stage's time and peak RSS at every size against the smallest, next to the growth of the rows.
Goal: at most linear, and the 10x run within 8 GiB.

On cores other work shares, the libraries' default thread pools (one thread per core) spin
against each other and training and the baselines slow down ten-fold: `--threads 1` runs
each size with OMP_NUM_THREADS=1 (docs/performance.md, growth with data).

    python benchmarks/scale.py [--sizes 1,3] [--epochs 2] [--threads N] [--raw-dir data/raw]
        [--set key=value ...] [--output reports/benchmarks/scale.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import MODEL, make_project, set_flags  # noqa: E402
from benchmarks.scale_data import replicate  # noqa: E402

MIB = 2**20
SAMPLE_S = 0.1
# the flow's own stages (flows/training.py) and, inside them, the functions timed on their own
FLOW_STAGES = ("ingest", "start_run", "validate", "train", "evaluate", "register")
INNER = {  # module, function -> the mark's name
    ("maas.pipeline.validation.run", "_run_suite"): "validation_suite",
    ("maas.pipeline.validation.run", "check_drift"): "drift",
    ("maas.pipeline.training.prepare", "prepare_training"): "train_prepare",
    ("maas.pipeline.training.fit", "fit"): "train_fit",
    ("maas.pipeline.evaluation.metrics", "fit_baselines"): "baselines",
}
# what the report shows: a stage, and what its row means
REPORTED = {
    "ingest": "ingest (maas ingest's stage: the partitions are there)",
    "validate": "validate stage (read, hash, suite, drift, write windows)",
    "validation_suite": "validation: the GX suite on every partition",
    "drift": "drift: each partition against the one before",
    "train_prepare": "training: features fitted, tensors built",
    "train_epoch": "training per epoch (fit / epochs)",
    "train": "train stage (prepare, fit, ONNX export)",
    "baselines": "evaluation: baselines fitted and scored",
    "evaluate": "evaluate stage",
    "register": "registration",
    "run": "whole `maas run` process",
}


def row_count_overrides(raw_params: Any, factor: float) -> list[str]:
    """validation.row_count scaled with the rows per partition (the band is per partition)."""
    band = raw_params.validation.row_count
    return [
        f"validation.row_count.min={int(band.min * factor)}",
        f"validation.row_count.max={int(band.max * factor) + 1}",
    ]


# ---- the measured process: `maas run` with stage marks -----------------------------------


def install_marks(marks: list[dict[str, Any]]) -> None:
    """Record (name, start, end) of every flow stage and of the INNER functions."""
    import maas.clock

    flow_timed = maas.clock.timed

    @contextlib.contextmanager
    def timed(timings: dict[str, float], name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            with flow_timed(timings, name):
                yield
        finally:
            marks.append({"name": name, "start": started, "end": time.monotonic()})

    maas.clock.timed = timed  # before the flow's module imports it
    for (module_name, attribute), name in INNER.items():
        module = importlib.import_module(module_name)
        setattr(module, attribute, marked(getattr(module, attribute), name, marks))


def marked(function: Callable[..., Any], name: str, marks: list[dict[str, Any]]) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            marks.append({"name": name, "start": started, "end": time.monotonic()})

    return wrapper


def child(project: Path, marks_file: Path, flags: list[str]) -> None:
    """`maas run --json FLAGS` in this process, in `project`; the marks to `marks_file`."""
    os.chdir(project)
    marks: list[dict[str, Any]] = []
    install_marks(marks)
    from maas.cli import main

    sys.argv = ["maas", "run", "--json", *flags]
    try:
        main()
    finally:
        marks_file.write_text(json.dumps(marks))


# ---- the measuring process --------------------------------------------------------------


class TreeSampler:
    """RSS of a process and all its descendants, summed, every SAMPLE_S seconds; and the
    largest high-water mark of any one of them (`largest`, bytes: the kernel's VmHWM, read
    while each process runs. wait4's ru_maxrss would count what a child shared with its
    parent until it exec'd: 1,234 MiB reported for a 327 MiB worker)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:  # the root has exited
                return
            for process in processes:
                with contextlib.suppress(psutil.Error):  # a child that just exited
                    total += process.memory_info().rss
                self.largest = max(self.largest, high_water(process.pid))
            self.samples.append((time.monotonic(), total))
            self._stop.wait(SAMPLE_S)

    def peak(self, start: float, end: float) -> int:
        """The largest sample in [start, end], or the one nearest to a shorter window."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        if inside:
            return max(inside)
        if not self.samples:
            return 0
        return min(self.samples, key=lambda s: abs(s[0] - (start + end) / 2))[1]


def high_water(pid: int) -> int:
    """A process's peak RSS so far, bytes (0 once it has gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return 0


def measure_run(
    project: Path, flags: list[str], log_file: Path, threads: int | None = None
) -> dict[str, Any]:
    """One `maas run` in a fresh process: its JSON result, the marks, RSS per stage.
    `threads`: OMP_NUM_THREADS/MKL_NUM_THREADS for it (torch's and scikit-learn's pools)."""
    marks_file = project / "stage-marks.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", str(project), str(marks_file)]
    with log_file.open("w") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, *flags], stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True
        )
        try:
            with TreeSampler(process.pid) as sampler:
                assert process.stdout is not None
                stdout = process.stdout.read().decode()
                process.wait()
        except BaseException:  # interrupted: no maas run (nor its Prefect server) left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise
        ended = time.monotonic()
    if process.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"maas run failed ({process.returncode}):\n{stdout[-2000:]}\n{tail}")
    result = json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])
    marks = json.loads(marks_file.read_text())
    stages: dict[str, dict[str, float]] = {}
    for mark in marks:  # a function that ran twice (never here) would keep its last call
        stages[mark["name"]] = {
            "s": round(mark["end"] - mark["start"], 3),
            "peak_rss_mib": round(sampler.peak(mark["start"], mark["end"]) / MIB, 1),
        }
    epochs = int(result["training"]["epochs"])
    if "train_fit" in stages:
        stages["train_epoch"] = {
            "s": round(stages["train_fit"]["s"] / epochs, 3),
            "peak_rss_mib": stages["train_fit"]["peak_rss_mib"],
        }
    stages["run"] = {
        "s": round(ended - started, 3),
        "peak_rss_mib": round(sampler.peak(started, ended) / MIB, 1),
    }
    return {
        "stages": stages,
        "epochs": epochs,
        "samples_per_second": result["training"]["samples_per_second"],
        "largest_process_peak_rss_mib": round(sampler.largest / MIB, 1),
        "rss_samples": len(sampler.samples),
        "test_score": result["metrics"]["test"],
    }


def growth(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each size's time and peak RSS per stage against the smallest size's."""
    base = sizes[0]
    out: dict[str, Any] = {}
    for size in sizes[1:]:
        ratios: dict[str, dict[str, float]] = {}
        for name, row in size["stages"].items():
            first = base["stages"].get(name)
            if first is None or first["s"] <= 0 or first["peak_rss_mib"] <= 0:
                continue  # absent, or under the millisecond the marks are rounded to
            ratios[name] = {
                "time": round(row["s"] / first["s"], 3),
                "peak_rss": round(row["peak_rss_mib"] / first["peak_rss_mib"], 3),
            }
        out[f"{base['factor']:g}x->{size['factor']:g}x"] = {
            "rows": round(size["rows"] / base["rows"], 3),
            "stages": ratios,
        }
    return out


def run_sizes(
    raw_dir: Path,
    factors: list[float],
    epochs: int,
    task: str | None,
    overrides: list[str],
    work: Path,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    from maas.config import load_params

    params = load_params(ROOT / "params.yaml", overrides, task)
    partitions = len(list(raw_dir.glob("*.parquet")))
    results = []
    for factor in factors:
        began = time.perf_counter()
        raw = work / f"raw-{factor:g}x"
        rows = replicate(raw_dir, raw, factor, params.validation, params.data)
        replicate_s = time.perf_counter() - began
        project = make_project(work / f"project-{factor:g}x", raw, task)
        sets = [
            *MODEL,
            f"train.max_epochs={epochs}",
            f"train.patience={epochs}",  # never stops early: every size trains `epochs`
            *row_count_overrides(params, factor),
            *overrides,
        ]
        print(f"{factor:g}x: {rows:,} rows in {partitions} partitions; maas run ...", flush=True)
        log_file = work / f"run-{factor:g}x.log"
        measured = measure_run(project, set_flags(task, sets), log_file, threads)
        results.append(
            {
                "factor": factor,
                "rows": rows,
                "partitions": partitions,
                "rows_per_partition": round(rows / partitions),
                "replicate_s": round(replicate_s, 2),
                "threads": threads,
                **measured,
            }
        )
        print_size(results[-1])
    return results


def print_size(size: dict[str, Any]) -> None:
    run = size["stages"]["run"]
    print(
        f"  {size['factor']:g}x: run {run['s']:.1f} s, tree peak {run['peak_rss_mib']:,.0f} MiB, "
        f"largest process {size['largest_process_peak_rss_mib']:,.0f} MiB; "
        + ", ".join(
            f"{name} {row['s']:.1f} s / {row['peak_rss_mib']:,.0f} MiB"
            for name, row in size["stages"].items()
            if name in REPORTED and name != "run"
        ),
        flush=True,
    )


def print_growth(result: dict[str, Any]) -> None:
    for pair, row in result["growth"].items():
        print(f"growth {pair} (rows x{row['rows']:.2f}):")
        for name, label in REPORTED.items():
            if name in row["stages"]:
                ratio = row["stages"][name]
                flag = "  WORSE THAN LINEAR" if ratio["time"] > row["rows"] else ""
                print(
                    f"  {label:<58} time x{ratio['time']:.2f}, peak RSS "
                    f"x{ratio['peak_rss']:.2f}{flag}"
                )


def parse_sizes(text: str) -> list[float]:
    try:
        factors = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--sizes: comma-separated numbers (1,3,10), not {text!r}") from None
    if not factors or factors[0] <= 0:
        raise SystemExit(f"--sizes: factors above 0, not {text!r}")
    return factors


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # the measured process: --child PROJECT MARKS maas-run-flags
        child(Path(argv[1]), Path(argv[2]), argv[3:])
        return {}
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    parser.add_argument("--sizes", default="1,3", help="factors of the raw rows (1,3,10)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs every size trains")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the runs (default: the libraries' own, one per core)",
    )
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep projects and logs here")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs: at least 1")
    factors = parse_sizes(args.sizes)
    if not any(args.raw_dir.glob("*.parquet")):
        sys.exit(f"no partitions in {args.raw_dir}: run `maas ingest` first")
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="maas-scale-")))
        else:
            work = args.keep
            work.mkdir(parents=True, exist_ok=False)
        sizes = run_sizes(
            args.raw_dir, factors, args.epochs, args.task, args.overrides, work, args.threads
        )
    result = {
        "epochs": args.epochs,
        "sample_interval_s": SAMPLE_S,
        "sizes": sizes,
        "growth": growth(sizes),
    }
    print_growth(result)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
