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
cancels).

    python benchmarks/rollout.py --model-tag flight-delay:v1 [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gateway import serve
from benchmarks.serving import free_port, request_body, wait_ready, write_report, wrk

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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tag", required=True)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)  # interleaved; the median of each
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between phases")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    from maas.operate.gateway import Gateway

    services = [serve(args.model_tag) for _ in range(2)]
    folder = Path(tempfile.mkdtemp(prefix="maas-rollout-bench-"))
    gateway = Gateway(folder, "127.0.0.1", free_port())
    runs: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    try:
        ports = [port for _, port in services]
        body = request_body(args.model_tag)
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/predict", body, 120)
        gateway.ensure()
        gateway.switch(MODEL, ports, "1")  # both slots and the canary backend hold 2 servers
        url = f"http://127.0.0.1:{gateway.port}/models/{MODEL}/predict"
        wrk(url, body, args.concurrency, 1)  # warm both services and the connections
        for index in range(args.rounds):
            for case in CASES if index % 2 == 0 else reversed(CASES):
                route(gateway, case, ports)
                time.sleep(args.pause)
                wrk(url, body, args.concurrency, 1)  # the new servers' connections opened
                runs[case].append(wrk(url, body, args.concurrency, args.seconds))
    finally:
        gateway.stop()
        for process, _ in services:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    def median(case: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[case])

    slot_rps, canary_rps = median("slot", "rps"), median("canary", "rps")
    # each round's two cases ran back to back: their ratio cancels what the machine's load did
    # between rounds (on 2 shared cores the rounds' own req/s differed by up to 60%)
    paired = [c["rps"] / s["rps"] for c, s in zip(runs["canary"], runs["slot"], strict=True)]
    result = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "cases": {
            case: {
                "rps": median(case, "rps"),
                "p50_ms": median(case, "p50_ms"),
                "p99_ms": median(case, "p99_ms"),
                "non_2xx": sum(run["non_2xx"] for run in runs[case]),
            }
            for case in CASES
        },
        # the share of req/s weighted routing costs: the median of the rounds' paired ratios
        "rps_cost": 1 - statistics.median(paired),
        "paired_ratios": paired,
        "p99_cost": median("canary", "p99_ms") / median("slot", "p99_ms") - 1,
        "runs": runs,
    }
    print(
        f"weighted routing: {canary_rps:.0f} req/s vs {slot_rps:.0f} on the live slot, paired "
        f"(cost {100 * result['rps_cost']:+.1f}%), p99 {median('canary', 'p99_ms'):.2f} ms vs "
        f"{median('slot', 'p99_ms'):.2f} ms ({100 * result['p99_cost']:+.1f}%)"
    )
    if args.output:
        write_report(args.output, result)
    return result


if __name__ == "__main__":
    main()
