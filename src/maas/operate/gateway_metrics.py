"""What Prometheus reads about the local target: the files the gateway renders beside its own.

HAProxy serves its own Prometheus exporter (`http-request use-service prometheus-exporter`) on
the frontend `deploy.gateway.metrics_listen` names (`gateway_routes.metrics_frontend`). Its
per-backend series carry the backend's name (`proxy="b0-blue"`), and a backend belongs to a
pool entry, not to a model: a model takes a free entry when it joins, without a reload. So
the same frontend answers `/metrics/backends` with which model each backend serves now, one
series per backend, from `backends.prom` (written whenever the routing table is recorded):

    maas_gateway_backend_info{proxy="b0-blue",model="flight-delay"} 1

and a query joins on `proxy`:

    sum by (model) (rate(haproxy_backend_http_responses_total[5m])
      * on (proxy) group_left (model) maas_gateway_backend_info)

Each serving replica's own `/metrics` (BentoML's request counters and duration histograms)
is a target in `prometheus/serving.json`, Prometheus's file service discovery (re-read on
change, no reload), labelled with its model, version and role (live, or the candidate of a
progressive rollout); `prometheus/prometheus.yml` is a scrape configuration that reads it and
the gateway's two paths (`prometheus --config.file .maas/deploy/prometheus/prometheus.yml`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from maas.errors import DeployError
from maas.files import write_text_atomic
from maas.net import port_open
from maas.operate.gateway_routes import CANARY, SLOTS, RouteTable, slot_backend

INFO = "maas_gateway_backend_info"
BACKENDS_FILE = "backends.prom"  # read by the Lua service maas_backends (gateway_catalog)
FOLDER = "prometheus"  # beside the gateway's files: the scrape configuration and its targets
TARGETS_FILE = "serving.json"
CONFIG_FILE = "prometheus.yml"
JOBS = {"gateway": "maas-gateway", "backends": "maas-gateway-backends", "serving": "maas-serving"}


def backends_text(table: RouteTable) -> str:
    """Prometheus's text format: for each routed model, its three backends (two slots and
    the canary's) with the model's name. Model names are `[A-Za-z0-9._-]+`: no escaping."""
    lines = [
        f"# HELP {INFO} The model each gateway backend (proxy) serves now (maas).",
        f"# TYPE {INFO} gauge",
    ]
    for model, route in sorted(table.routes.items()):
        for part in (*SLOTS, CANARY):
            proxy = slot_backend(route.backend, part)
            lines.append(f'{INFO}{{proxy="{proxy}",model="{model}"}} 1')
    return "\n".join(lines) + "\n"


def serving_targets(table: RouteTable, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """File service discovery groups: each model's live replicas, and a rollout's candidate
    replicas, with their labels."""
    groups: list[dict[str, Any]] = []
    for model, route in sorted(table.served().items()):
        groups.append(_group(host, route.ports, model, str(route.version), "live"))
        if route.canary is not None:
            canary = route.canary
            groups.append(_group(host, canary.ports, model, canary.version, "candidate"))
    return groups


def _group(host: str, ports: list[int], model: str, version: str, role: str) -> dict[str, Any]:
    return {
        "targets": [f"{host}:{port}" for port in ports],
        "labels": {"model": model, "version": version, "role": role},
    }


def scrape_config(
    metrics_listen: str | None, targets_file: Path, *, interval: str = "15s"
) -> dict[str, Any]:
    """A whole Prometheus configuration: the gateway's exporter and backend map (where
    `metrics_listen` is set) and every serving replica, from `targets_file`."""
    jobs: list[dict[str, Any]] = []
    if metrics_listen is not None:
        for job, path in ((JOBS["gateway"], "/metrics"), (JOBS["backends"], "/metrics/backends")):
            jobs.append(
                {
                    "job_name": job,
                    "metrics_path": path,
                    "static_configs": [{"targets": [metrics_listen]}],
                }
            )
    jobs.append(
        {
            "job_name": JOBS["serving"],
            "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
        }
    )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


class MetricsFiles:
    """`backends.prom` beside the gateway's configuration, `prometheus/serving.json` and
    `prometheus/prometheus.yml` in the folder beside it."""

    def __init__(self, folder: Path, metrics_listen: str | None) -> None:
        self.backends = folder / BACKENDS_FILE
        self.targets = folder / FOLDER / TARGETS_FILE
        self.config = folder / FOLDER / CONFIG_FILE
        self.metrics_listen = metrics_listen

    def write(self, table: RouteTable) -> None:
        """The files as `table` says (each written atomically: Prometheus and the Lua service
        read whole files)."""
        self.targets.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.backends, backends_text(table))
        _write_if_changed(self.targets, json.dumps(serving_targets(table), indent=1) + "\n")
        config = scrape_config(self.metrics_listen, self.targets)
        header = "# rendered by maas (maas.operate.gateway_metrics): docs/operations.md\n"
        _write_if_changed(self.config, header + yaml.safe_dump(config, sort_keys=False))


def metrics_address_free(metrics: str | None, host: str, port: int) -> None:
    """deploy.gateway.metrics_listen is ours to bind: HAProxy would not start on an address
    another process holds, and would share the model's own address."""
    if metrics is None:
        return
    metrics_host, _, metrics_port = metrics.rpartition(":")
    if (metrics_host, int(metrics_port)) == (host, port):
        raise DeployError(f"deploy.gateway.metrics_listen {metrics} is deploy.address")
    if port_open(metrics_host or "127.0.0.1", int(metrics_port)):
        raise DeployError(
            f"deploy.gateway.metrics_listen {metrics} is held by another process: stop it "
            "or choose another address (null: no metrics frontend)"
        )


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)
