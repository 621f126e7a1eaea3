"""Which reverse proxy is the gateway: nginx, HAProxy and Caddy (Debian's packages), maas's
gateway (HAProxy switched through its Runtime API, `maas.operate.gateway`) and the forwarder
it replaced (benchmarks/forwarder_baseline.py), against going straight to the service, in one run.

Two instances of the same BentoML service (`maas.serving.service`, one worker each) stand for
the serving version and the next one. Each gateway proxies to the first; wrk drives
single-record requests at c = 8, 32, 64 through each and straight to the service, the servers
alternating within each case (medians of the rounds). Then, under continuous load (c = 32),
each gateway's upstream is switched between the two instances every second the way it would
be in production (nginx: `nginx -t` + SIGHUP; HAProxy: `haproxy -c` + SIGUSR2 to its master;
maas's gateway: its switch, no reload; Caddy: `caddy validate` + `caddy reload` through its
admin API; the forwarder: its state file replaced): failed requests are counted, and for
maas's gateway the requests each server slot answered (proof that the traffic moved). Last,
each proxy's own validator is asked whether a weighted split and request mirroring (what
canary and shadow releases need) are expressible.

    python benchmarks/gateway.py --model-tag flight-delay:v1 [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gateway_configs import GATEWAYS, Gateway
from benchmarks.serving import ROOT, free_port, request_body, wait_ready, write_report, wrk


def serve(model_tag: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "maas.serving.service:ModelService",
            "--port",
            str(port),
            "--arg",
            f"model_tag={model_tag}",
        ],
        cwd=ROOT / "src",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return process, port


def wrk_errors(url: str, body: str, connections: int, seconds: int) -> dict[str, Any]:
    """wrk's counts of failed requests (non-2xx, and socket errors of every kind)."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{body}]]\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
        "socket_errors_by_kind": dict(
            zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True)
        )
        if sockets
        else {},
    }


def switching_under_load(
    gateway: Gateway, ports: tuple[int, int], body: str, seconds: int
) -> dict[str, Any]:
    """Switch the upstream every second while wrk keeps 32 connections busy."""
    stop = threading.Event()
    switches: list[float] = []

    def switch() -> None:
        index = 1
        while not stop.wait(1.0):
            started = time.monotonic()
            gateway.switch(ports[index % 2])
            switches.append(time.monotonic() - started)
            index += 1

    thread = threading.Thread(target=switch)
    thread.start()
    try:
        counts = wrk_errors(gateway.url, body, 32, seconds)
    finally:
        stop.set()
        thread.join()
    median = statistics.median(switches) if switches else None
    return counts | {"switches": len(switches), "switch_s_median": median}


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of these processes and their children so far."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            for each in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = each.cpu_times()
                    total += times.user + times.system
    return total


def busy(times: Any) -> float:
    """The machine's busy CPU seconds: all but idle and I/O wait (softirq counts: a network
    load spends much of its time there); guest time is already in user."""
    spare = times.idle + getattr(times, "iowait", 0)
    return float(sum(times) - spare - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0))


def replicas_under_load(
    gateway: Any, services: list[tuple[subprocess.Popen[bytes], int]], body: str, seconds: int
) -> dict[str, Any]:
    """deploy.replicas: one model behind maas's gateway on 1 and then 2 service instances
    (one worker each) at c = 32, and where the machine's CPU went in each run: the services,
    the gateway, and the rest (the load generator, wrk)."""
    import psutil

    ports = [port for _, port in services]
    rows: dict[str, Any] = {}
    for replicas in (1, 2):
        gateway.haproxy.switch("bench", ports[:replicas], str(replicas))
        gateway_pid = [int(gateway.haproxy.pid_file.read_text())]  # 2 restarts it once
        time.sleep(1)
        service_pids = [process.pid for process, _ in services[:replicas]]
        machine, ours, proxy = (
            psutil.cpu_times(),
            cpu_seconds(service_pids),
            cpu_seconds(gateway_pid),
        )
        row: dict[str, Any] = dict(wrk(gateway.url, body, 32, seconds))
        used = busy(psutil.cpu_times()) - busy(machine)
        served, routed = cpu_seconds(service_pids) - ours, cpu_seconds(gateway_pid) - proxy
        row["cpu_s"] = {
            "services": round(served, 2),
            "gateway": round(routed, 2),
            "load_generator_and_rest": round(used - served - routed, 2),
        }
        rows[f"{replicas} replica{'s' if replicas > 1 else ''}"] = row
        print(
            f"  replicas={replicas}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.2f} ms, "
            f"CPU s {row['cpu_s']}"
        )
    gateway.haproxy.switch("bench", ports[:1], "1")
    rows["ratio_2_vs_1"] = rows["2 replicas"]["rps"] / rows["1 replica"]["rps"]
    return rows


def throughput(
    targets: dict[str, str], body: str, concurrency: str, rounds: int, seconds: int, pause: float
) -> dict[str, dict[str, dict[str, float]]]:
    """wrk through each target at each concurrency, targets alternating; medians of the rounds
    (errors summed), and each gateway's ratios to going direct."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        print(f"round {round_ + 1} of {rounds}")
        for connections in (int(c) for c in concurrency.split(",")):
            order = list(targets) if round_ % 2 == 0 else list(targets)[::-1]
            for name in order:
                time.sleep(pause)
                row = wrk(targets[name], body, connections, seconds)
                runs.setdefault((name, connections), []).append(row)
                print(
                    f"  c={connections:<3} {name:<15} {row['rps']:>8.0f} req/s "
                    f"p50 {row['p50_ms']:>6.2f} p99 {row['p99_ms']:>6.2f} ms "
                    f"non-2xx {row['non_2xx']:.0f}"
                )
    results: dict[str, dict[str, dict[str, float]]] = {}
    for (name, connections), rows in runs.items():
        summary = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        summary |= {key: sum(row[key] for row in rows) for key in ("non_2xx", "socket_errors")}
        results.setdefault(name, {})[f"c={connections}"] = summary
    print(f"median of {rounds} rounds; ratios to direct")
    for name in [t for t in targets if t != "direct"]:
        for case, row in results[name].items():
            direct = results["direct"][case]
            row["rps_ratio"] = row["rps"] / direct["rps"]
            row["p99_added_ms"] = row["p99_ms"] - direct["p99_ms"]
            print(
                f"  {case:<5} {name:<15} {row['rps_ratio']:.3f}x req/s, "
                f"p99 {row['p99_added_ms']:+.2f} ms, non-2xx {row['non_2xx']:.0f}"
            )
    return results


def switching(
    gateways: dict[str, Gateway], ports: tuple[int, int], body: str, seconds: int
) -> dict[str, Any]:
    print(f"switching the upstream every second under load (c=32, {seconds} s)")
    results: dict[str, Any] = {}
    for name, gateway in gateways.items():
        served = getattr(gateway, "served", None)
        before = served() if served else {}
        row = switching_under_load(gateway, ports, body, seconds)
        if served:
            row["served_by_slot"] = {k: v - before.get(k, 0) for k, v in served().items()}
        results[name] = row
        slots = f", by slot {row['served_by_slot']}" if "served_by_slot" in row else ""
        print(
            f"  {name:<15} {row['switches']} switches, {row['requests']} requests, "
            f"non-2xx {row['non_2xx']}, socket errors {row['socket_errors']}{slots}"
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-tag", required=True, help="BentoML model, e.g. flight-delay:v1")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--switch-seconds", type=int, default=20)
    parser.add_argument("--concurrency", default="8,32,64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each wrk run")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--gateways", default=",".join(GATEWAYS), help="a subset, by name")
    args = parser.parse_args(argv)
    chosen = {name: GATEWAYS[name] for name in args.gateways.split(",")}
    needs = {"wrk", "haproxy"} | {name for name in ("nginx", "caddy") if name in chosen}
    missing = sorted(tool for tool in needs if shutil.which(tool) is None)
    if missing:
        sys.exit(
            f"not installed: {' '.join(missing)} (apt-get install wrk nginx-light haproxy caddy)"
        )
    work = Path(tempfile.mkdtemp(prefix="maas-gateway-bench-"))
    services = [serve(args.model_tag) for _ in range(2)]
    ports = (services[0][1], services[1][1])
    gateways: dict[str, Gateway] = {}
    results: dict[str, Any] = {}
    try:
        one = request_body(args.model_tag)  # a record of the model's own task
        for _, port in services:
            wait_ready(f"http://127.0.0.1:{port}/predict", one)
        for name, make in chosen.items():
            gateways[name] = make(work / name, free_port(), ports[0])
            wait_ready(gateways[name].url, one)
        targets = {"direct": f"http://127.0.0.1:{ports[0]}/predict"} | {
            name: gateway.url for name, gateway in gateways.items()
        }
        results["throughput"] = throughput(
            targets, one, args.concurrency, args.rounds, args.seconds, args.pause
        )
        if "maas_gateway" in gateways:
            print(f"replicas behind maas's gateway (c=32, {os.cpu_count()} cores)")
            results["replicas"] = replicas_under_load(
                gateways["maas_gateway"], services, one, args.seconds
            )
        results["switching"] = switching(gateways, ports, one, args.switch_seconds)
        print("what each proxy's own validator accepts")
        results["features"] = {name: gateway.features(ports) for name, gateway in gateways.items()}
        for name, features in results["features"].items():
            print(f"  {name:<15} {features}")
    finally:
        for gateway in gateways.values():
            gateway.stop()
        for process, _ in services:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    write_report(args.output, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
