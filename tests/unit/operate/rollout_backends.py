"""What the rollout tests run as versions: small real HTTP servers that answer `/predict` (well,
with 500s, or slowly) and keep a real Prometheus histogram of their `/predict` durations on
`/metrics`, named as BentoML names it; and a fleet that starts and removes them by name."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from maas.operate.rollout_fleet import Started, scrape_latency

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def version_server(
    name: str, *, status: int = 200, delay_s: float = 0.0
) -> tuple[ThreadingHTTPServer, int]:
    """`name` on POST /predict (with `status`, after `delay_s`); its histogram on /metrics."""
    registry = CollectorRegistry()
    durations = Histogram(
        "request_duration_seconds",
        "API HTTP request duration in seconds",
        ["endpoint", "http_response_code"],
        namespace="bentoml_service",  # BentoML 1.4 services (its v2 configuration)
        buckets=BUCKETS,
        registry=registry,
    )

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            started = time.perf_counter()
            self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(delay_s)
            self._send(status, name.encode())
            durations.labels("/predict", str(status)).observe(time.perf_counter() - started)

        def do_GET(self) -> None:
            self._send(200, generate_latest(registry))

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a connection the gateway reset (a removed version): nothing to print

    server = Quiet(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class ServerFleet:
    """Versions as `version_server`s: `behaviour[version]` says how each answers."""

    def __init__(self, behaviour: dict[str, dict[str, float]]) -> None:
        self.behaviour = behaviour
        self.servers: dict[str, ThreadingHTTPServer] = {}

    def start(self, version: str) -> Started:
        settings = self.behaviour.get(version, {})
        server, port = version_server(
            f"v{version}",
            status=int(settings.get("status", 200)),
            delay_s=settings.get("delay_s", 0.0),
        )
        name = f"v{version}-{port}"
        self.servers[name] = server
        return Started([name], [port], f"maas-m:v{version}", f"id-{version}")

    def remove(self, names: list[str]) -> None:
        for name in names:
            server = self.servers.pop(name, None)
            if server is not None:
                server.shutdown()

    def running(self, names: list[str]) -> bool:
        return all(name in self.servers for name in names)

    def latency(self, ports: list[int]) -> dict[str, float]:
        return scrape_latency(ports)

    def stop_all(self) -> None:
        self.remove(list(self.servers))
