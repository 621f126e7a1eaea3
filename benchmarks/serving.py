"""Serving throughput: the maas BentoML service vs plain FastAPI + uvicorn, same model, one run.

Both servers load the same BentoML model folder (one registered version's ONNX graph and
preprocessing JSON), use the same pydantic schema and the same featurizing code, one worker
each; wrk (Debian package `wrk`) drives them from this machine. Prints req/s, latency and
non-2xx counts per concurrency and the ratio ours / baseline.

    python benchmarks/serving.py --model-tag flight-delay:v1 [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = {"month": 12, "day": 5, "sched_dep_time": 830, "sched_arr_time": 1130, "carrier": "AA",
          "origin": "JFK", "dest": "LAX", "distance": 2475, "temp": 40.1, "dewp": 30.0,
          "humid": 60.0, "wind_dir": 200, "wind_speed": 10.4, "wind_gust": None, "precip": 0,
          "pressure": 1012.3, "visib": 10}  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json={"flights": [RECORD]}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def wrk(url: str, body: str, connections: int, seconds: int) -> dict[str, float]:
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
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    script.unlink()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": float(re.search(r"P50 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": float(re.search(r"P99 ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": 1 if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tag", required=True, help="BentoML model, e.g. flight-delay:v1")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--output", type=Path, default=ROOT / "reports/benchmarks/serving.json")
    parser.add_argument("--bulk", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--bentoml-config", default="", help="BENTOML_CONFIG_OPTIONS for our server (variants)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    import bentoml

    folder = bentoml.models.get(args.model_tag).path
    ours_port, base_port = free_port(), free_port()
    env = {**os.environ, "MAAS_MODEL_DIR": folder}
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "maas.service:FlightDelayService",
             "--port", str(ours_port), "--arg", f"model_tag={args.model_tag}"],
            cwd=ROOT / "src", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "BENTOML_CONFIG_OPTIONS": args.bentoml_config},
        ),
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "benchmarks.fastapi_baseline:app", "--port",
             str(base_port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    results: dict[str, dict[str, dict[str, float]]] = {"maas_bentoml": {}, "fastapi": {}}
    try:
        urls = {
            "maas_bentoml": f"http://127.0.0.1:{ours_port}/predict",
            "fastapi": f"http://127.0.0.1:{base_port}/predict",
        }
        for url in urls.values():
            wait_ready(url)
        one = json.dumps({"flights": [RECORD]})
        bulk = json.dumps({"flights": [RECORD] * 1000})
        cases = [(f"1 record, c={c}", one, int(c)) for c in args.concurrency.split(",")]
        if args.bulk:
            cases.append(("1000 records, c=4", bulk, 4))
        header = ("case", "server", "req/s", "p50 ms", "p99 ms", "non-2xx")
        print("{:<20} {:<13} {:>8} {:>8} {:>8} {:>8}".format(*header))
        for name, body, connections in cases:
            for server, url in urls.items():  # alternate servers: drift hits both alike
                row = wrk(url, body, connections, args.seconds)
                results[server][name] = row
                print(f"{name:<20} {server:<13} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                      f"{row['p99_ms']:>8.2f} {row['non_2xx']:>8}")  # fmt: skip
            ratio = results["maas_bentoml"][name]["rps"] / results["fastapi"][name]["rps"]
            print(f"{'':<20} ratio ours/baseline req/s: {ratio:.2f}x")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
