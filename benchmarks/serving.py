"""Serving throughput: the maas BentoML service vs plain FastAPI + uvicorn, same model, one run.

All servers load the same BentoML model folder (one registered version's ONNX graph and
preprocessing JSON), use the same pydantic schema and the same featurizing code, one worker
each; wrk (Debian package `wrk`) drives them from this machine, servers alternating within
each case. Besides ours (`maas.serving.service`) and the baseline (plain FastAPI + uvicorn,
benchmarks/fastapi_baseline.py), the alternatives of benchmarks/service_variants.py: BentoML
adaptive batching, an int8-quantized graph and torch eager in the same service shape, and our
service with its prediction log on (what the log costs). Prints
req/s, latency and non-2xx counts per case and the ratios to the first server of the case.

    python benchmarks/serving.py --model-tag flight-delay:v1 [--weights models/weights.safetensors]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_body(model_tag: str, records: int = 1) -> str:
    """A /predict body of the model version's own task: its example record (the training
    record its request spec keeps for the warm-up) `records` times, under the task's body key."""
    import bentoml

    from maas.serving.inference import request_spec

    spec = request_spec(Path(bentoml.models.get(model_tag).path))
    return json.dumps({spec.body_key: [spec.example] * records})


def wait_ready(url: str, body: str, timeout: float = 90) -> None:
    """Until `url` answers `body` (a /predict request) with 200."""
    import httpx

    headers = {"Content-Type": "application/json"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, content=body, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a server process and its children (BentoML's workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def wrk(
    url: str, body: str, connections: int, seconds: int, pid: int | None = None
) -> dict[str, float]:
    """wrk's req/s and latency; with `pid`, also the server's CPU time per request (what the
    server spends, less sensitive than req/s to other load on a shared machine)."""
    before = tree_cpu_s(pid) if pid else 0.0
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{body}]]\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50) / 1000,'
        " latency:percentile(99) / 1000))\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    spent = tree_cpu_s(pid) - before if pid else 0.0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "cpu_ms_per_req": spent * 1000 / max(rps * seconds, 1.0),
        "p50_ms": float(re.search(r"P50 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": float(re.search(r"P99 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": 1 if errors else 0,
    }


def start_servers(
    model_tag: str, weights: Path | None, bentoml_config: str, log_dir: Path
) -> dict[str, Any]:
    """Every server of the comparison, each on its own port: name -> (process, url)."""
    import bentoml

    folder = bentoml.models.get(model_tag).path
    servers: dict[str, Any] = {}

    def bentoml_serve(name: str, target: str, cwd: Path, **env: str) -> None:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                target,
                "--port",
                str(port),
                "--arg",
                f"model_tag={model_tag}",
            ],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={
                **os.environ,
                "BENTOML_CONFIG_OPTIONS": bentoml_config,
                "PYTHONPATH": str(ROOT),
                **env,
            },
        )
        servers[name] = (process, f"http://127.0.0.1:{port}/predict")

    bentoml_serve("maas", "maas.serving.service:ModelService", ROOT / "src")
    # the same service with its prediction log on (as the deploy target runs it): the log's cost
    bentoml_serve(
        "maas_logging",
        "maas.serving.service:ModelService",
        ROOT / "src",
        MAAS_PREDICTION_LOG_DIR=str(log_dir),
    )
    port = free_port()
    servers["fastapi"] = (
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.fastapi_baseline:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, "MAAS_MODEL_DIR": folder},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        f"http://127.0.0.1:{port}/predict",
    )
    variants = "benchmarks.service_variants:"
    bentoml_serve("maas_batching", variants + "BatchingService", ROOT)
    bentoml_serve("onnx_int8", variants + "RuntimeService", ROOT, MAAS_BENCH_RUNTIME="onnx-int8")
    if weights is not None:
        bentoml_serve(
            "torch_eager",
            variants + "RuntimeService",
            ROOT,
            MAAS_BENCH_RUNTIME="torch",
            MAAS_BENCH_WEIGHTS=str(weights),
        )
    return servers


Case = tuple[str, str, int, list[str]]  # name, request body, connections, servers compared


def comparison_cases(model_tag: str, concurrency: str, servers: dict[str, Any]) -> list[Case]:
    """Every case of the comparison, with bodies of the model's own task."""
    one, bulk = request_body(model_tag), request_body(model_tag, 1000)
    runtimes: list[str] = [n for n in ("maas", "onnx_int8", "torch_eager") if n in servers]
    cases: list[Case] = [
        (f"1 record, c={c}", one, int(c), ["maas", "fastapi"]) for c in concurrency.split(",")
    ]
    cases.append(("1000 records, c=4", bulk, 4, ["maas", "fastapi"]))
    cases += [(f"batching: 1 record, c={c}", one, c, ["maas", "maas_batching"]) for c in (8, 64)]
    cases += [
        (f"prediction log: 1 record, c={c}", one, c, ["maas", "maas_logging"]) for c in (1, 8)
    ]
    cases.append(("prediction log: 1000 records, c=4", bulk, 4, ["maas", "maas_logging"]))
    cases.append(("runtime: 1 record, c=8", one, 8, runtimes))
    cases.append(("runtime: 1000 records, c=4", bulk, 4, runtimes))
    return cases


def run_cases(
    cases: list[Case], servers: dict[str, Any], rounds: int, seconds: int, pause: float
) -> dict[str, dict[str, dict[str, float]]]:
    """wrk on every server of every case, `rounds` times; medians (errors summed)."""
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        print(f"round {round_ + 1} of {rounds}")
        for name, body, connections, names in cases:
            # the servers of a case run back to back, in reverse order every other round,
            # with a pause before each: drift and a busy predecessor hit all alike
            for server in names if round_ % 2 == 0 else names[::-1]:
                time.sleep(pause)
                process, url = servers[server]
                row = wrk(url, body, connections, seconds, process.pid)
                runs.setdefault((server, name), []).append(row)
                print(
                    f"  {name:<26} {server:<14} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                    f"{row['p99_ms']:>8.2f} {row['non_2xx']:>8} {row['cpu_ms_per_req']:>8.3f}"
                )
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in servers}
    for (server, name), rows in runs.items():
        results[server][name] = {
            key: statistics.median(row[key] for row in rows) for key in rows[0]
        } | {key: sum(row[key] for row in rows) for key in ("non_2xx", "socket_errors")}
    return results


def print_results(cases: list[Case], results: dict[str, Any], rounds: int) -> None:
    header = ("case", "server", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU ms/req")
    print(f"median of {rounds} rounds")
    print("{:<26} {:<14} {:>8} {:>8} {:>8} {:>8} {:>10}".format(*header))
    for name, _, _, names in cases:
        for server in names:
            row = results[server][name]
            print(
                f"{name:<26} {server:<14} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                f"{row['p99_ms']:>8.2f} {row['non_2xx']:>8.0f} {row['cpu_ms_per_req']:>10.3f}"
            )
        first = results[names[0]][name]
        ratios = [
            f"{o} {results[o][name]['rps'] / first['rps']:.2f}x req/s, "
            f"{results[o][name]['cpu_ms_per_req'] / first['cpu_ms_per_req']:.2f}x "
            "CPU per request"
            for o in names[1:]
        ]
        print(f"{'':<26} ratio to {names[0]}: " + "; ".join(ratios))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tag", required=True, help="BentoML model, e.g. flight-delay:v1")
    parser.add_argument(
        "--weights", type=Path, default=None, help="weights.safetensors: adds torch eager"
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each wrk run")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--only", default="", help="run only the cases whose name starts so")
    parser.add_argument(
        "--bentoml-config", default="", help="BENTOML_CONFIG_OPTIONS for our server (variants)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    log_dir = Path(tempfile.mkdtemp(prefix="maas-bench-predictions-"))
    servers = start_servers(args.model_tag, args.weights, args.bentoml_config, log_dir)
    try:
        cases = comparison_cases(args.model_tag, args.concurrency, servers)
        cases = [case for case in cases if case[0].startswith(args.only)]
        for _, url in servers.values():
            wait_ready(url, request_body(args.model_tag))
        results = run_cases(cases, servers, args.rounds, args.seconds, args.pause)
        print_results(cases, results, args.rounds)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(log_dir, ignore_errors=True)
    write_report(args.output, results)
    return results


def write_report(path: Path | None, results: dict[str, Any]) -> None:
    """The results as JSON at `path` (the benchmark's --output), if one was given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
