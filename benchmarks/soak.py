"""Soak: a packaged service under a steady request rate for a long time (`make soak`).

Starts the image in a container (podman/docker), sends single-record `/predict` requests (the
example record of the version's own request spec, read from its /metadata) at a fixed rate
from one asyncio client for `--seconds`, samples the container's resident memory (all its
processes, from the host's /proc) every 10 s, and fails (exit 1) on any non-2xx answer or
connection error, or when resident memory grew by more than `--max-growth` (default 10%)
between the end of the warm-up and the end of the run.

    python benchmarks/soak.py --image localhost/maas-flight-delay:v3 [--seconds 600 --rate 200]
    python benchmarks/soak.py --ref champion        # packages the champion first (maas package)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def drive(
    url: str,
    body: dict[str, Any],
    seconds: float,
    rate: float,
    warmup: float,
    sample: Callable[[], int],
) -> dict[str, Any]:
    """Open-loop at `rate` with at most `workers` requests in flight: request i is due at
    i / rate; a worker that is free sends the next due one. If the service cannot keep up,
    requests go out late (reported as `max_lag_s`) instead of piling up in the client."""
    import httpx

    workers = 64
    latencies: list[float] = []
    failures: dict[str, int] = {}
    samples: list[tuple[float, int]] = []
    total = int(seconds * rate)
    counter = iter(range(total))
    max_lag = 0.0
    sent = 0  # requests that went out (a worker that died would leave planned ones unsent)
    # Idle connections expire on our side first (2 s < uvicorn's 5 s keep-alive, which
    # BentoML leaves at the default): with equal timeouts a request sent just as the server
    # closes an idle connection fails (3 ReadErrors in 120,000 requests in the first soak).
    limits = httpx.Limits(
        max_connections=workers, max_keepalive_connections=workers, keepalive_expiry=2
    )
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        begin = time.perf_counter()

        async def worker() -> None:
            nonlocal max_lag, sent
            for index in counter:
                delay = begin + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    max_lag = max(max_lag, -delay)
                started = time.perf_counter()
                sent += 1
                try:
                    response = await client.post(url, json=body)
                    key = None if response.is_success else f"http {response.status_code}"
                except httpx.HTTPError as error:
                    key = type(error).__name__
                if key is None:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures[key] = failures.get(key, 0) + 1

        async def sampler() -> None:
            await asyncio.sleep(warmup)
            while time.perf_counter() - begin < seconds:
                samples.append((round(time.perf_counter() - begin, 1), sample()))
                await asyncio.sleep(10)

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(workers)))
        sampling.cancel()
        samples.append((round(time.perf_counter() - begin, 1), sample()))
    ok = len(latencies)
    latencies = sorted(latencies) or [float("nan")]
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return {
        "planned": total,
        "sent": sent,
        "ok": ok,
        "failures": failures,
        "samples": samples,
        "max_lag_s": round(max_lag, 3),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * p99,
    }


def request_body(base: str) -> dict[str, Any]:
    """One record of the served version's task: its request spec's example (/metadata)."""
    import httpx

    spec = httpx.post(f"{base}/metadata", json={}, timeout=10).json()["request"]
    return {spec["body_key"]: [spec["example"]]}


def package(ref: str, params_file: str, task: str | None) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from maas.config import load_params
    from maas.release.packaging import package_version
    from maas.tracking.store import connect

    params = load_params(params_file, task=task)
    result = package_version(
        connect(params.registry),
        params.registry,
        params.packaging,
        params.serving,
        ref,
        verdict_key_file=params.promotion.verdict_key_file,
    )
    if result.image is None:
        raise SystemExit(f"no image: {result.note}")
    return result.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="image to soak (default: package --ref)")
    parser.add_argument("--ref", default="champion", help="version or alias to package")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the baseline")
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "soak.json")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from maas.net import free_port
    from maas.release import containers
    from maas.release.containers import wait_ready

    image = args.image or package(args.ref, args.params, args.task)
    backend, reasons = containers.select_backend("auto")
    runtime = containers.runtime_for(backend) if backend else None
    if runtime is None:
        raise SystemExit(f"no container runtime: {reasons}")
    port = free_port()
    name = f"maas-soak-{port}"
    containers.run_container(runtime, image, name, port)
    try:
        base = f"http://127.0.0.1:{port}"
        if not wait_ready(base, 120):
            raise SystemExit(containers.container_logs(runtime, name))
        rss = lambda: containers.container_rss_bytes(runtime, name)  # noqa: E731
        warmup = min(args.warmup, args.seconds / 3)
        body = request_body(base)
        result = asyncio.run(drive(f"{base}/predict", body, args.seconds, args.rate, warmup, rss))
    finally:
        containers.remove_container(runtime, name)
    baseline, final = result["samples"][0][1], result["samples"][-1][1]
    growth = (final - baseline) / baseline
    report = {
        "image": image,
        "seconds": args.seconds,
        "rate": args.rate,
        **result,
        "rss_baseline_mb": round(baseline / 1e6, 1),
        "rss_final_mb": round(final / 1e6, 1),
        "rss_growth": round(growth, 4),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(
        f"soak {image}: {result['ok']:,} ok of {result['sent']:,} sent in {args.seconds:.0f}s "
        f"at {args.rate:g}/s; failures {result['failures'] or 'none'}; p50 "
        f"{result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms; RSS {baseline / 1e6:.0f} -> "
        f"{final / 1e6:.0f} MB ({growth:+.1%}); max send lag {result['max_lag_s']}s; "
        f"report {args.json}"
    )
    unsent = result["planned"] - result["sent"]
    if result["failures"] or unsent or result["ok"] != result["sent"] or growth > args.max_growth:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
