"""`make bench`: every benchmark in one go, the goals of each, `reports/benchmarks.json`.

Order: the pipeline run (ours vs a plain script; it also yields the model quality table and
the trained project the next steps use), the training loop, the model runtimes, serving
(ours vs FastAPI vs the alternatives) and promotion latency (containers). Each step's own
JSON lands in reports/benchmarks/<step>.json; the summary of ratios against the goals is
printed and written to reports/benchmarks.json with the machine it ran on.

    python benchmarks/run_all.py [--skip promotion,serving] [--seconds 5]
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
    runtime,
    serving,
    training,
)
from benchmarks.goals import goals  # noqa: E402

STEPS = ("pipeline", "training", "runtime", "kinds", "serving", "gateway", "promotion")


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


def bento_model(project: Path) -> str:
    """The project's champion (trained by the pipeline step) imported as a BentoML model."""
    previous = Path.cwd()
    os.chdir(project)
    try:
        from mlflow import MlflowClient

        from maas.config import load_params
        from maas.release.bento import create_bento_model
        from maas.tracking.registry import resolve_version
        from maas.tracking.store import resolve_tracking_uri

        params = load_params("params.yaml")
        uri = resolve_tracking_uri(params.registry)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = resolve_version(client, params.registry.model_name, "champion")
        return str(create_bento_model(client, params.registry, version))
    finally:
        os.chdir(previous)


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
            "AUC": f"{v:+.4f}",
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    parser.add_argument("--skip", default="", help=f"comma-separated steps of {STEPS}")
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per serving case")
    parser.add_argument("--output", type=Path, default=ROOT / "reports/benchmarks.json")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if not any(args.raw_dir.glob("*.parquet")):
        sys.exit(f"no partitions in {args.raw_dir}: run `maas ingest` (or `make run`) first")
    out = ROOT / "reports/benchmarks"
    started = time.perf_counter()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def step(name: str, call: Any) -> None:
        if name in skip:
            return
        print(f"\n=== {name} ===", flush=True)
        began = time.perf_counter()
        results[name] = call()
        timings[name] = round(time.perf_counter() - began, 1)

    tmp = Path(tempfile.mkdtemp(prefix="maas-bench-"))
    try:
        project = tmp / "project"  # trained and registered by the pipeline step
        step(
            "pipeline",
            lambda: pipeline.main(
                [
                    "--raw-dir",
                    str(args.raw_dir),
                    "--keep",
                    str(project),
                    "--output",
                    str(out / "pipeline.json"),
                ]
            ),
        )
        if {"training", "runtime", "kinds", "serving", "gateway"} - skip:
            if not (project / "models").is_dir():  # the pipeline step was skipped
                pipeline.run_ours(pipeline.make_project(project, args.raw_dir))
            model_tag = bento_model(project)
            step(
                "training",
                lambda: training.main(
                    ["--project", str(project), "--output", str(out / "training.json")]
                ),
            )
            step(
                "runtime",
                lambda: runtime.main(
                    [
                        "--models",
                        str(project / "models"),
                        "--test",
                        str(project / "data/processed/test.parquet"),
                        "--output",
                        str(out / "runtime.json"),
                    ]
                ),
            )
            os.chdir(project)  # its validated windows
            step(
                "kinds",
                lambda: model_kinds.main(
                    [
                        "--latency-only",
                        "--config",
                        "mlp=model.kind=mlp",
                        "--config",
                        "tabm=model.kind=tabm",
                        "--output",
                        str(out / "model-kinds.json"),
                    ]
                ),
            )
            os.chdir(ROOT)
            step(
                "serving",
                lambda: serving.main(
                    [
                        "--model-tag",
                        model_tag,
                        "--weights",
                        str(project / "models/weights.safetensors"),
                        "--seconds",
                        str(args.seconds),
                        "--output",
                        str(out / "serving.json"),
                    ]
                ),
            )
            gateway_args = [
                "--model-tag",
                model_tag,
                "--gateways",
                "maas_gateway,maas_forwarder",
                "--rounds",
                "1",
                "--seconds",
                str(args.seconds),
                "--switch-seconds",
                "10",
                "--output",
                str(out / "gateway.json"),
            ]
            step("gateway", lambda: gateway.main(gateway_args))  # vs the old forwarder, direct
        step(
            "promotion",
            lambda: promotion.main(
                ["--raw-dir", str(args.raw_dir), "--output", str(out / "promotion.json")]
            ),
        )
    finally:
        os.chdir(ROOT)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "machine": machine(),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "step_seconds": timings,
        "goals": goals(results),
        "results": results,
    }
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
        else:
            shown = f"{value:.4g}{row['unit'] if row['unit'] == 'x' else ''}"
        mark = "-" if row["met"] is None else ("met" if row["met"] else "MISSED")
        print(f"{mark:<7} {row['what']}: {shown}  (goal {row['goal']})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1, default=float))
    args.output.with_suffix(".md").write_text(markdown(summary))
    print(f"wrote {args.output}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
