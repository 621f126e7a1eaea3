"""What a canary's weighted routing costs at maas's gateway: req/s and p99 with the model's
requests split by weight between two versions (`maas.operate.gateway_canary`: the canary
backend, weights set over the Runtime API) versus today's routing (the live slot, its servers
balanced round-robin), in one run.

Two instances of the same BentoML service (`maas.serving.service`, one worker each) stand for
the champion and the candidate. So that only the routing differs, both cases spread the
requests over both instances: `slot` routes the model to its live slot holding both as
replicas (round-robin), `canary` routes it to the canary backend with the second instance
as the candidate at 50%. wrk drives single-record requests through the gateway at
`--concurrency`; the cases alternate within each round, and the cost is the median of the
rounds' canary/slot ratios (each pair ran back to back, so the machine's load between rounds
cancels). Beside req/s, the gateway's own CPU time per request (HAProxy's master and worker):
what the routing itself spends, far less sensitive to other load on the machine than req/s.

Then the same with two HAProxy instances answering every request at once with a fixed
prediction in place of the services (`stub`; `--no-stub` skips it, no `--model-tag` runs only
it): the gateway is the only work there, so its routing cost is not lost in the services'
noise.

    python benchmarks/rollout.py --model-tag flight-delay:v1 [--seconds 5] [--rounds 5]
    python benchmarks/rollout.py [--concurrency 64]          # the instant backends only
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gateway import serve
from benchmarks.serving import free_port, request_body, wait_ready, write_report, wrk

STUB_BODY = '{"model_version":"1","predictions":[{"probability":0.25}]}'
STUB_CONFIG = """global
  maxconn 4096
defaults
  mode http
  timeout client 60s
  timeout connect 5s
  timeout server 60s
frontend stub
  bind 127.0.0.1:{port}
  http-request return status 200 content-type application/json string '{body}'
"""


def stub(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """An HAProxy answering every request on 127.0.0.1:`port` with `STUB_BODY`, at once."""
    config = folder / f"stub-{port}.cfg"
    config.write_text(STUB_CONFIG.format(port=port, body=STUB_BODY))
    return subprocess.Popen(["haproxy", "-f", str(config)], stderr=subprocess.DEVNULL)


MODEL = "bench"
CASES = ("slot", "canary")


def route(gateway: Any, case: str, ports: list[int]) -> None:
    """The model routed as `case` says, over the Runtime API (no reload)."""
    from maas.operate.gateway_canary import end_canary, start_canary

    end_canary(gateway, MODEL, promote=False)
    if case == "slot":
        gateway.switch(MODEL, ports, "1")
    else:
        gateway.switch(MODEL, ports[:1], "1")
        start_canary(gateway, MODEL, ports[1:], "2", weight=50, sticky=None)


def measure(args: argparse.Namespace, model_tag: str | None) -> dict[str, Any]:
    """One run of both cases, interleaved: behind the gateway two services of `model_tag`, or
    (None) two instant HAProxy stubs."""
    from maas.operate.gateway import Gateway

    folder = Path(tempfile.mkdtemp(prefix="maas-rollout-bench-"))
    if model_tag is None:
        services = [(stub(folder, port), port) for port in (free_port(), free_port())]
        body = '{"flights": [{}]}'
    else:
        services = [serve(model_tag) for _ in range(2)]
        body = request_body(model_tag)
    gateway = Gateway(folder, "127.0.0.1", free_port())
    runs: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    try:
        ports = [port for _, port in services]
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/predict", body, 120)
        gateway.ensure()
        master = int(gateway.pid_file.read_text())  # its CPU: master and worker
        gateway.switch(MODEL, ports, "1")  # both slots and the canary backend hold 2 servers
        url = f"http://127.0.0.1:{gateway.port}/models/{MODEL}/predict"
        wrk(url, body, args.concurrency, 1)  # warm both services and the connections
        for index in range(args.rounds):
            for case in CASES if index % 2 == 0 else reversed(CASES):
                route(gateway, case, ports)
                time.sleep(args.pause)
                wrk(url, body, args.concurrency, 1)  # the new servers' connections opened
                runs[case].append(wrk(url, body, args.concurrency, args.seconds, master))
    finally:
        gateway.stop()
        for process, _ in services:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    def median(case: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[case])

    # each round's two cases ran back to back: their ratio cancels what the machine's load did
    # between rounds (on 2 shared cores the rounds' own req/s differed by up to 60%)
    pairs = list(zip(runs["canary"], runs["slot"], strict=True))
    rps = [c["rps"] / s["rps"] for c, s in pairs]
    cpu = [c["cpu_ms_per_req"] / s["cpu_ms_per_req"] for c, s in pairs]
    cases = {
        case: {
            "rps": median(case, "rps"),
            "p50_ms": median(case, "p50_ms"),
            "p99_ms": median(case, "p99_ms"),
            "gateway_cpu_us_per_req": 1000 * median(case, "cpu_ms_per_req"),
            "non_2xx": sum(run["non_2xx"] for run in runs[case]),
        }
        for case in CASES
    }
    result: dict[str, Any] = {
        "backends": model_tag or "stub",
        "cases": cases,
        # the share of req/s weighted routing costs: the median of the rounds' paired ratios
        "rps_cost": 1 - statistics.median(rps),
        "paired_ratios": rps,
        # the gateway's CPU per request, canary / slot, the median of the rounds' pairs
        "gateway_cpu_cost": statistics.median(cpu) - 1,
        "p99_cost": median("canary", "p99_ms") / median("slot", "p99_ms") - 1,
        "runs": runs,
    }
    print(
        f"weighted routing ({result['backends']}): {cases['canary']['rps']:.0f} req/s vs "
        f"{cases['slot']['rps']:.0f} on the live slot (paired cost "
        f"{100 * result['rps_cost']:+.1f}%), p99 {cases['canary']['p99_ms']:.2f} vs "
        f"{cases['slot']['p99_ms']:.2f} ms ({100 * result['p99_cost']:+.1f}%); the gateway's "
        f"CPU per request {cases['canary']['gateway_cpu_us_per_req']:.1f} vs "
        f"{cases['slot']['gateway_cpu_us_per_req']:.1f} us "
        f"({100 * result['gateway_cpu_cost']:+.1f}%)"
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tag", default=None, help="the served model (else: --stub only)")
    parser.add_argument("--no-stub", action="store_true", help="skip the instant backends")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)  # interleaved; the median of each
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between phases")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.no_stub and not args.model_tag:
        parser.error("--no-stub needs --model-tag")
    result: dict[str, Any] = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    if args.model_tag:
        result.update(measure(args, args.model_tag))
    if not args.no_stub:
        result["stub"] = measure(args, None)
        if not args.model_tag:
            result.update(result["stub"])
    if args.output:
        write_report(args.output, result)
    return result


if __name__ == "__main__":
    main()
