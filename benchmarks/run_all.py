"""`make bench`: every benchmark in one go, the goals of each, `reports/benchmarks.json`.

Order: the pipeline run (ours vs a plain script; it also yields the model quality table and
the trained project the next steps use), the training loop, the model runtimes, serving
(ours vs FastAPI vs the alternatives), batch scoring and promotion latency (containers).
Each step's own JSON lands in reports/benchmarks/<step>.json; the summary of ratios against
the goals is printed and written to reports/benchmarks.json with the machine it ran on. Any
task runs (`--task`, default params.yaml's): request bodies and fields come from the trained
model's request spec, scores are the task kind's.

`--smoke` (`make bench-smoke`; tests/integration/test_bench_smoke.py) runs the harness with
tiny settings, to prove that it works, not to measure: the newest three partitions, one
epoch, about a second per load phase, into reports/bench-smoke/ (never over the committed
reports). It covers every step but promotion, which builds and packages container images:

- pipeline: `maas run` twice and the plain script once on those partitions (1 epoch of the
  MLP, the prior and linear baselines only, no floors), GX vs pandas on them;
- training: 1 round of 1 epoch of each loop (minimal, DataLoader, fit, fit + MLflow);
- runtime: int8 quantization and 2 timing rounds of 5 ms samples;
- kinds: the MLP's and TabM's untrained one-record ONNX latency, 200 calls each;
- serving: every server and case once, 1 s of wrk each (c=8 for the single-record cases);
- gateway: maas's gateway and the old forwarder, 1 s of wrk at c=8, 2 s of switching;
- rollout: a canary's weighted routing vs the live slot's, 1 s of wrk at c=8, one round,
  behind the services and behind instant backends (the gateway alone);
- scoring: `maas score` on 20,000 rows (local backend, the raw ONNX limit, Spark local[2]),
  its peak RSS at 20,000 and 200,000 rows;
- scale: `maas run` on a 5% and a 10% sample of the partitions, one epoch (the full run: the
  data at 1x and 3x, 2 epochs; 10x on demand: `python benchmarks/scale.py --sizes 1,3,10`).

    python benchmarks/run_all.py [--task NAME] [--skip promotion,serving] [--seconds 5]
    python benchmarks/run_all.py --smoke [--raw-dir data/raw] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    gateway,
    model_kinds,
    pipeline,
    promotion,
    rollout,
    runtime,
    scale,
    scoring,
    serving,
    training,
)
from benchmarks.goals import goals  # noqa: E402

STEPS = (
    "pipeline",
    "training",
    "runtime",
    "kinds",
    "serving",
    "gateway",
    "scoring",
    "scale",
    "promotion",
    "rollout",
)
SMOKE_PARTITIONS = 3  # the newest ones: two to train on (drift needs a predecessor), one to test
# The smoke's pipeline: one epoch, no slow baseline, and a gate that passes whatever a one-epoch
# model scores (the next steps need a champion), for any task kind.
SMOKE_SETS = [
    "train.max_epochs=1",
    "evaluate.baselines=[prior, logistic_regression]",
    "promotion.must_beat=[]",
    "promotion.floors={}",
    "promotion.floors_optional_absent={}",
]
# Each step's settings: the full run's, then (later flags win) the smoke's tiny ones.
SMOKE_ARGS = {
    "training": ["--epochs", "1", "--rounds", "1"],
    "runtime": ["--rounds", "2", "--seconds", "0.005"],
    "kinds": ["--calls", "200"],
    "serving": ["--seconds", "1", "--rounds", "1", "--concurrency", "8", "--pause", "0.2"],
    "gateway": ["--seconds", "1", "--switch-seconds", "2", "--concurrency", "8", "--pause", "0.2"],
    "rollout": ["--seconds", "1", "--rounds", "1", "--concurrency", "8", "--pause", "0.2"],
    "scoring": ["--rows", "20000", "--group-rows", "5000", "--memory-rows", "20000"],
    "scale": ["--sizes", "0.05,0.1", "--epochs", "1"],
}
TASK_STEPS = {
    "pipeline",
    "training",
    "kinds",
    "scoring",
    "promotion",
    "scale",
}  # the others read the trained model


def machine() -> dict[str, Any]:
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    with_name = Path("/proc/cpuinfo")
    if with_name.is_file():
        names = [
            x.split(":", 1)[1].strip()
            for x in with_name.read_text().splitlines()
            if x.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def trained_model(project: Path, task: str | None) -> tuple[str, Path, Path]:
    """The project's champion (trained by the pipeline step) imported as a BentoML model: its
    tag, the project's models folder and test window (absolute)."""
    previous = Path.cwd()
    os.chdir(project)
    try:
        from mlflow import MlflowClient

        from maas.config import load_params
        from maas.pipeline.data.windows import TEST_FILE
        from maas.release.bento import create_bento_model
        from maas.tracking.registry import resolve_version
        from maas.tracking.store import resolve_tracking_uri

        params = load_params("params.yaml", task=task)
        uri = resolve_tracking_uri(params.registry)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = resolve_version(client, params.registry.model_name, "champion")
        tag = str(create_bento_model(client, params.registry, version))
        test = project / params.data.processed_dir / TEST_FILE
        return tag, project / params.train.models_dir, test
    finally:
        os.chdir(previous)


def newest_partitions(raw_dir: Path, into: Path, count: int) -> Path:
    """A folder holding only the newest `count` partitions of `raw_dir` (links, not copies)."""
    into.mkdir(parents=True)
    for path in sorted(raw_dir.glob("*.parquet"))[-count:]:
        (into / path.name).symlink_to(path.resolve())
    return into


def markdown(summary: dict[str, Any]) -> str:
    """The README's tables of one run (also written to reports/benchmarks.md)."""
    m = summary["machine"]
    lines = [
        f"Measured by `make bench` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, GPU: {m['gpu'] or 'none'}; Python {m['python']}, torch "
        f"{m['torch']}, onnxruntime {m['onnxruntime']}; {summary['elapsed_s']:.0f} s in all.",
        "",
        "| goal | measured | target | |",
        "|---|---|---|---|",
    ]
    for g in summary["goals"]:
        v = g["measured"]
        shown = {
            "records/s": f"{v:,.0f} records/s",
            "requests": f"{v:.0f} failed",
            "share": f"{100 * v:.1f}%",
            "score": f"{v:+.4f}",
            "GiB": f"{v:.2f} GiB",
        }.get(g["unit"], f"{v:.2f}×")
        met = "—" if g["met"] is None else ("met" if g["met"] else "**missed**")
        lines.append(f"| {g['what']} | {shown} | {g['goal']} | {met} |")
    serving = summary["results"].get("serving")
    if serving:
        lines += [
            "",
            "| case | server | req/s | p50 ms | p99 ms | non-2xx |",
            "|---|---|---|---|---|---|",
        ]
        cases = list(dict.fromkeys(case for rows in serving.values() for case in rows))
        for case in cases:
            for server, rows in serving.items():
                if case in rows:
                    x = rows[case]
                    lines.append(
                        f"| {case} | {server} | {x['rps']:.0f} | {x['p50_ms']:.2f} | "
                        f"{x['p99_ms']:.2f} | {x['non_2xx']:.0f} |"
                    )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--skip", default="", help=f"comma-separated steps of {STEPS}")
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per serving case")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: the harness works")
    parser.add_argument("--out-dir", type=Path, default=None, help="each step's JSON")
    parser.add_argument("--output", type=Path, default=None, help="the summary JSON")
    args = parser.parse_args(argv)
    reports = ROOT / "reports" / ("bench-smoke" if args.smoke else "")
    args.out_dir = args.out_dir or (reports if args.smoke else reports / "benchmarks")
    args.output = args.output or reports / "benchmarks.json"
    if args.smoke:
        args.skip += ",promotion"  # it builds and packages container images
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if not any(args.raw_dir.glob("*.parquet")):
        sys.exit(f"no partitions in {args.raw_dir}: run `maas ingest` (or `make run`) first")
    out, task = args.out_dir, args.task
    started = time.perf_counter()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def step(name: str, call: Any, *flags: str) -> None:
        if name in skip:
            return
        print(f"\n=== {name} ===", flush=True)
        began = time.perf_counter()
        smoke = SMOKE_ARGS.get(name, []) if args.smoke else []
        chosen = ["--task", task] if task and name in TASK_STEPS else []
        results[name] = call([*flags, *chosen, *smoke])
        timings[name] = round(time.perf_counter() - began, 1)

    tmp = Path(tempfile.mkdtemp(prefix="maas-bench-"))
    if args.smoke:  # BentoML reads its home at import (nothing has imported it yet)
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
    raw_dir = args.raw_dir
    if args.smoke:
        raw_dir = newest_partitions(args.raw_dir, tmp / "raw", SMOKE_PARTITIONS)
    sets = [f for item in SMOKE_SETS for f in ("--set", item)] if args.smoke else []
    try:
        project = tmp / "project"  # trained and registered by the pipeline step
        step(
            "pipeline",
            pipeline.main,
            *("--raw-dir", str(raw_dir), "--keep", str(project), *sets),
            *("--output", str(out / "pipeline.json")),
        )
        if {"training", "runtime", "kinds", "serving", "gateway", "rollout", "scoring"} - skip:
            if not (project / "params.yaml").is_file():  # the pipeline step was skipped
                made = pipeline.make_project(project, raw_dir, task)
                pipeline.run_ours(made, task, SMOKE_SETS if args.smoke else [])
            model_tag, models, test = trained_model(project, task)
            later_steps(step, project, model_tag, models, test, args)
        step(  # cost growth with data: 1x and 3x the rows (data growth, issue 32)
            "scale",
            scale.main,
            *("--raw-dir", str(raw_dir), *sets, "--output", str(out / "scale.json")),
        )
        step(
            "promotion",
            promotion.main,
            *("--raw-dir", str(raw_dir), "--output", str(out / "promotion.json")),
        )
    finally:
        os.chdir(ROOT)
        shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {
        "machine": machine(),
        "smoke": args.smoke,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "step_seconds": timings,
        "goals": goals(results),
        "results": results,
    }
    print_summary(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1, default=float))
    args.output.with_suffix(".md").write_text(markdown(summary))
    print(f"wrote {args.output}")
    return summary


def later_steps(
    step: Any, project: Path, model_tag: str, models: Path, test: Path, args: argparse.Namespace
) -> None:
    """The steps on the pipeline's trained project and its champion."""
    out = args.out_dir
    step(
        "training",
        training.main,
        *("--project", str(project), "--output", str(out / "training.json")),
    )
    step(
        "runtime",
        runtime.main,
        *("--models", str(models), "--test", str(test), "--output", str(out / "runtime.json")),
    )
    os.chdir(project)  # its validated windows
    step(
        "kinds",
        model_kinds.main,
        *("--params", str(project / "params.yaml"), "--latency-only"),
        *("--config", "mlp=model.kind=mlp", "--config", "tabm=model.kind=tabm"),
        *("--output", str(out / "model-kinds.json")),
    )
    os.chdir(ROOT)
    step(
        "serving",
        serving.main,
        *("--model-tag", model_tag, "--weights", str(models / "weights.safetensors")),
        *("--seconds", str(args.seconds), "--output", str(out / "serving.json")),
    )
    step(  # vs the old forwarder, and going direct
        "gateway",
        gateway.main,
        *("--model-tag", model_tag, "--gateways", "maas_gateway,maas_forwarder"),
        *("--rounds", "1", "--seconds", str(args.seconds), "--switch-seconds", "10"),
        *("--output", str(out / "gateway.json")),
    )
    step(  # a canary's weighted routing vs the live slot's
        "rollout",
        rollout.main,
        *("--model-tag", model_tag, "--seconds", str(args.seconds)),
        *("--output", str(out / "rollout.json")),
    )
    step(  # local backend vs the raw ONNX limit, Spark local[2] vs local
        "scoring",
        scoring.main,
        *("--project", str(project), "--test", str(test), "--output", str(out / "scoring.json")),
    )


def print_summary(summary: dict[str, Any]) -> None:
    print(
        f"\n=== summary ({summary['elapsed_s']:.0f} s on {summary['machine']['cpu']}, "
        f"{summary['machine']['cores']} cores) ==="
    )
    for row in summary["goals"]:
        value = row["measured"]
        if row["unit"] == "records/s":
            shown = f"{value:,.0f} records/s"
        elif row["unit"] == "share":
            shown = f"{100 * value:.1f}%"
        elif row["unit"] == "GiB":
            shown = f"{value:.2f} GiB"
        else:
            shown = f"{value:.4g}{row['unit'] if row['unit'] == 'x' else ''}"
        mark = "-" if row["met"] is None else ("met" if row["met"] else "MISSED")
        print(f"{mark:<7} {row['what']}: {shown}  (goal {row['goal']})")


if __name__ == "__main__":
    main(sys.argv[1:])
