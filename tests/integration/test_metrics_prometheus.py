"""A real Prometheus (Debian's package) scrapes the real HAProxy gateway's own exporter and the
replicas behind it with the scrape configuration maas renders, and answers per-model request
rate, error rate and p99 latency in PromQL: the queries docs/operations.md and the Grafana
dashboard (deploy/grafana/maas.json) use."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from maas.config.sections import GatewayParams
from maas.net import free_port, wait_until
from maas.operate.gateway import Gateway
from maas.operate.gateway_metrics import JOBS, scrape_config
from tests.helpers import ROOT, missing
from tests.unit.operate.gateway_backends import needs_haproxy
from tests.unit.operate.rollout_backends import version_server

BY_MODEL = "* on (proxy) group_left (model) maas_gateway_backend_info"
SENT = "sum by (model) (haproxy_backend_http_responses_total " + BY_MODEL + ")"
RATE = "sum by (model) (rate(haproxy_backend_http_responses_total[1m]) " + BY_MODEL + ")"
ERRORS = (
    'sum by (model) (rate(haproxy_backend_http_responses_total{code="5xx"}[1m]) '
    + BY_MODEL
    + ") / "
    + RATE
)
P99 = (
    "histogram_quantile(0.99, sum by (model, le) ("
    'rate(bentoml_service_request_duration_seconds_bucket{endpoint="/predict"}[1m])))'
)
SERVED = 'sum by (model) (bentoml_service_request_duration_seconds_count{endpoint="/predict"})'


def dashboard_queries() -> list[tuple[str, str]]:
    """The Grafana dashboard's PromQL, its variables filled in as Grafana would."""
    board = json.loads((ROOT / "deploy" / "grafana" / "maas.json").read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", "1m").replace("$model", ".*"))
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def needs_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        missing("prometheus", "Prometheus is not installed (Debian's package `prometheus`)")
    return found


class Prometheus:
    """Prometheus on a loopback port, its data in a temporary folder."""

    def __init__(self, binary: str, config: dict[str, Any], folder: Path) -> None:
        folder.mkdir()
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def query(self, promql: str) -> dict[str, float]:
        """An instant query's answer: the `model` label -> the value."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        return {
            row["metric"].get("model", ""): float(row["value"][1])
            for row in answer.json()["data"]["result"]
        }

    def up(self) -> dict[str, float]:
        try:
            answer = httpx.get(f"{self.url}/api/v1/query", params={"query": "up"}, timeout=2)
        except httpx.HTTPError:
            return {}
        rows = answer.json()["data"]["result"] if answer.status_code == 200 else []
        return {
            f"{r['metric']['job']}/{r['metric']['instance']}": float(r["value"][1]) for r in rows
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    needs_haproxy()
    limits = GatewayParams.model_validate({"metrics_listen": f"127.0.0.1:{free_port()}"})
    gateway = Gateway(tmp_path / "deploy", "127.0.0.1", free_port(), limits=limits)
    yield gateway
    gateway.stop()


def test_prometheus_answers_rate_errors_and_p99_per_model(gateway: Gateway, tmp_path: Path) -> None:
    binary = needs_prometheus()
    slow, slow_port = version_server("alpha", delay_s=0.06)  # p99 in the (0.05, 0.1] bucket
    good, good_port = version_server("beta")
    bad, bad_port = version_server("beta-broken", status=500)  # every other beta request
    servers = [slow, good, bad]
    prometheus = None
    try:
        gateway.ensure()
        gateway.switch("alpha", [slow_port], "3")
        gateway.switch("beta", [good_port, bad_port], "7")  # round-robin: half are 500s
        endpoint = f"http://127.0.0.1:{gateway.port}/models"
        sent = {"alpha": 0, "beta": 0}

        def send(model: str, count: int) -> None:
            with httpx.Client(timeout=5) as http:
                for _ in range(count):
                    http.post(f"{endpoint}/{model}/predict", json={})
                    sent[model] += 1

        send("alpha", 1)  # each replica's histogram has its series before the first scrape
        send("beta", 2)
        config = scrape_config(
            gateway.limits.metrics_listen, gateway.metrics.targets, interval="1s"
        )
        rendered = yaml.safe_load(gateway.metrics.config.read_text())  # beside the gateway's
        assert rendered["scrape_configs"] == config["scrape_configs"]  # ours: a 1 s interval
        prometheus = Prometheus(binary, config, tmp_path / "prometheus")
        targets = 2 + 3  # the gateway's two paths, three replicas
        scraped = lambda: sum(prometheus.up().values()) == targets  # noqa: E731
        assert wait_until(scraped, 20, 0.2), prometheus.up()
        assert {key.split("/")[0] for key in prometheus.up()} == set(JOBS.values())
        assert wait_until(lambda: prometheus.query(SENT) == {"alpha": 1, "beta": 2}, 5, 0.2)

        for _ in range(3):  # spread over a few scrapes
            send("alpha", 15)
            send("beta", 20)
            time.sleep(0.7)
        expected = {model: float(count) for model, count in sent.items()}
        assert wait_until(lambda: prometheus.query(SENT) == expected, 5, 0.2), (
            prometheus.query(SENT),
            expected,
        )
        assert wait_until(lambda: prometheus.query(SERVED) == expected, 5, 0.2)

        rates = prometheus.query(RATE)
        assert set(rates) == {"alpha", "beta"} and all(rate > 0 for rate in rates.values())
        assert rates["beta"] > rates["alpha"]  # 62 requests against 46 in the same window
        errors = prometheus.query(ERRORS)
        assert errors["alpha"] == 0.0
        assert 0.4 <= errors["beta"] <= 0.6, errors  # the broken replica's 500s
        p99 = prometheus.query(P99)
        assert 0.05 <= p99["alpha"] <= 0.25, p99  # 60 ms each: 0.0995 measured (2 cores)
        assert p99["beta"] < p99["alpha"], p99  # no delay
        for title, expr in dashboard_queries():  # each panel answers, per model where it says
            found = prometheus.query(expr)
            if "by (model" in expr and "maas_prediction_log_lost" not in expr:
                assert set(found) == {"alpha", "beta"}, (title, found)
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers:
            server.shutdown()
