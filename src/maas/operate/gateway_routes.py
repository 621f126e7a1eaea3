"""The gateway's routing table and the HAProxy configuration rendered from it.

One HAProxy frontend serves every model: `/models/<name>/...` reaches the slot where that
model's live version runs, with the prefix removed, `/models/<name>/versions/<N>/...` the slot
where version N runs (404 once another version took over), `GET /models` and
`GET /models/<name>` answer the catalog, and any other path reaches the default task's
model. Each model holds one of a pool of backend pairs, `bN-blue` and `bN-green` (a slot each,
of `replicas` servers balanced round-robin). Which slot serves a model, which version runs in
which slot and what the catalog says live in three HAProxy map files, so that adding a model,
switching a version or publishing the catalog changes a map through the Runtime API and never
reloads the configuration; only a model beyond the pool or more replicas make a new
configuration (a graceful reload).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maas.errors import DeployError
from maas.files import write_text_atomic

SLOTS = ("blue", "green")  # a fresh gateway serves each model from blue
POOL = 8  # backends per configuration beyond the routed models: that many models join live
NO_SERVER_PORT = 1  # an empty slot: disabled; with both disabled HAProxy answers 503
ALL, NAMES, DEFAULT = "*all", "*names", "*default"  # map keys no model name can take
FORMAT = "maas gateway format 3"  # in the configuration: a gateway of another one is reloaded
CATALOG_BYTES = 12_000  # a map value is one Runtime API payload, within tune.bufsize (16 KiB)
MODEL_NAME = r"[A-Za-z0-9._-]+"


@dataclass
class Route:
    backend: str  # b0, b1, ...: the pool's pair of slot backends this model uses
    ports: list[int] = field(default_factory=list)  # the live slot's replicas (none: out)
    version: str | None = None  # the version in the live slot
    live: str = SLOTS[0]


def slot_backend(backend: str, slot: str) -> str:
    """The HAProxy backend of one slot of a pool entry: `b0-blue`."""
    return f"{backend}-{slot}"


def servers(slot: str, replicas: int) -> list[str]:
    """A slot's server names: `blue`, then `blue2`, `blue3`, ... for more replicas."""
    return [slot if i == 1 else f"{slot}{i}" for i in range(1, replicas + 1)]


def slot_servers(backend: str, slot: str, replicas: int) -> list[str]:
    """A slot's servers as the Runtime API names them: `b0-blue/blue`, `b0-blue/blue2`, ..."""
    return [f"{slot_backend(backend, slot)}/{server}" for server in servers(slot, replicas)]


@dataclass
class RouteTable:
    """What the gateway routes, kept in gateway.json beside its configuration."""

    routes: dict[str, Route] = field(default_factory=dict)
    default: str | None = None  # the model un-prefixed paths reach (the default task's)
    pool: int = POOL
    replicas: int = 1  # servers per slot (the most replicas a model runs)
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> RouteTable:
        """The table (an empty one before the first deploy). A file that does not parse is
        an error, not an empty table: routing from nothing would take a backend a live model
        holds."""
        try:
            raw = json.loads(path.read_text())
            routes = {name: Route(**route) for name, route in raw.pop("routes").items()}
            return cls(routes=routes, **raw)
        except FileNotFoundError:
            return cls()
        except (ValueError, TypeError, KeyError) as error:
            raise DeployError(
                f"the gateway's routing table {path} does not parse ({error}): "
                "remove it and `maas watch` routes from the deploy state"
            ) from None

    def write(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(asdict(self), indent=1), durable=True)

    def backend_for(self, model: str) -> str | None:
        """The model's backend, else a free one from the pool (None: the pool is full)."""
        if model in self.routes:
            return self.routes[model].backend
        used = {route.backend for route in self.routes.values()}
        return next((f"b{i}" for i in range(self.pool) if f"b{i}" not in used), None)

    def served(self) -> dict[str, Route]:
        return {name: route for name, route in self.routes.items() if route.ports}


def route_map(table: RouteTable) -> dict[str, str]:
    """model -> its live slot's backend for the models in service; `*default` -> the default
    model's."""
    entries = {
        name: slot_backend(route.backend, route.live)
        for name, route in sorted(table.served().items())
    }
    if table.default in entries:
        entries[DEFAULT] = entries[str(table.default)]
    return entries


def version_map(table: RouteTable) -> dict[str, str]:
    """`<model>/<version>` -> the backend of the slot it runs in (the live versions: at a
    switch the new version's entry replaces the old one's, whose requests in flight finish)."""
    return {
        f"{name}/{r.version}": slot_backend(r.backend, r.live)
        for name, r in sorted(table.served().items())
    }


def catalog_map(table: RouteTable) -> dict[str, str]:
    """`*all` -> the catalog as a JSON list, `*names` -> the model names, model -> its entry."""
    entries = {name: _compact(entry) for name, entry in sorted(table.catalog.items())}
    listed = "[" + ",".join(entries.values()) + "]"
    if len(listed) > CATALOG_BYTES:  # many models: the list without the input fields
        brief = [
            {k: v for k, v in e.items() if k != "inputs"} for _, e in sorted(table.catalog.items())
        ]
        listed = _compact(brief)
    too_long = [key for key, value in entries.items() if len(value) > CATALOG_BYTES]
    if len(listed) > CATALOG_BYTES or too_long:
        raise DeployError(f"the catalog is over {CATALOG_BYTES} bytes ({too_long or 'the list'})")
    return {ALL: listed, NAMES: _compact(sorted(table.served())), **entries}


def _compact(value: Any) -> str:
    """One line (a map entry's value), no spaces between tokens."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def map_text(entries: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in entries.items())


@dataclass(frozen=True)
class MapFiles:
    routes: Path
    versions: Path
    catalog: Path

    def write(self, table: RouteTable) -> dict[Path, dict[str, str]]:
        """Every map file as `table` says (what a starting HAProxy reads); their entries."""
        maps = {
            self.routes: route_map(table),
            self.versions: version_map(table),
            self.catalog: catalog_map(table),
        }
        for path, entries in maps.items():
            write_text_atomic(path, map_text(entries))
        return maps


def render(table: RouteTable, host: str, port: int, socket_file: Path, maps: MapFiles) -> str:
    """The HAProxy configuration: one frontend, `table.pool` pairs of slot backends."""
    catalog, routes, versions = maps.catalog, maps.routes, maps.versions
    unknown = (
        '{\\"error\\":\\"no such model\\",\\"model\\":\\"%[var(txn.model),json(utf8s)]\\",'
        f'\\"models\\":%[str({NAMES}),map({catalog})]}}'
    )
    not_running = (
        '{\\"error\\":\\"version not running\\",\\"model\\":\\"%[var(txn.model),json(utf8s)]\\",'
        '\\"version\\":\\"%[var(txn.version),json(utf8s)]\\"}'
    )
    no_default = (
        '{\\"error\\":\\"no default model serves here: use /models/<name>/...\\",'
        f'\\"models\\":%[str({NAMES}),map({catalog})]}}'
    )
    backends = []
    for index in range(table.pool):
        name = f"b{index}"
        route = next((r for r in table.routes.values() if r.backend == name), None)
        for slot in SLOTS:
            live = route.ports if route is not None and slot == route.live else []
            lines = [f"backend {slot_backend(name, slot)}", "  balance roundrobin"]
            for number, server in enumerate(servers(slot, table.replicas)):
                if number < len(live):
                    lines.append(f"  server {server} 127.0.0.1:{live[number]}")
                else:
                    lines.append(f"  server {server} 127.0.0.1:{NO_SERVER_PORT} disabled")
            backends.append("\n".join(lines) + "\n")
    return f"""# {FORMAT}: rendered by maas (maas.operate.gateway_routes) from {socket_file.parent}/gateway.json
global
  master-worker
  stats socket {socket_file} mode 600 level admin expose-fd listeners
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  option http-keep-alive
  retries 1
  retry-on conn-failure empty-response
  option redispatch 1
frontend maas
  bind {host}:{port}
  acl model_path path_beg /models/
  acl catalog_path path /models /models/
  http-request return status 200 content-type application/json lf-string "%[str({ALL}),map({catalog})]" if METH_GET catalog_path
  http-request set-var(txn.model) path,field(3,/) if model_path
  http-request set-var(txn.backend) var(txn.model),map({routes}) if model_path {{ var(txn.model) -m reg ^{MODEL_NAME}$ }}
  http-request return status 200 content-type application/json lf-string "%[var(txn.model),map({catalog})]" if METH_GET {{ path_reg ^/models/{MODEL_NAME}/?$ }} {{ var(txn.model),map({catalog}) -m found }}
  http-request return status 404 content-type application/json lf-string "{unknown}" if model_path !{{ var(txn.backend) -m found }}
  acl version_path path_reg ^/models/{MODEL_NAME}/versions/[0-9]+(/|$)
  http-request set-var(txn.version) path,field(5,/) if version_path
  http-request set-var(txn.slot) var(txn.model),concat(/,txn.version),map({versions}) if version_path
  http-request return status 404 content-type application/json lf-string "{not_running}" if version_path !{{ var(txn.slot) -m found }}
  http-request set-var(txn.backend) var(txn.slot) if version_path
  http-request del-header X-Forwarded-Prefix
  http-request set-header X-Forwarded-Prefix /models/%[var(txn.model)] if model_path !version_path
  http-request set-header X-Forwarded-Prefix /models/%[var(txn.model)]/versions/%[var(txn.version)] if version_path
  http-request set-var(txn.backend) str({DEFAULT}),map({routes}) if !model_path
  http-request return status 404 content-type application/json lf-string "{no_default}" if !model_path !{{ var(txn.backend) -m found }}
  # the prefix goes last: the rules above read the path as the client sent it
  http-request set-path %[path,regsub(^/models/[^/]+/versions/[0-9]+,)] if version_path
  http-request set-path %[path,regsub(^/models/[^/]+,)] if model_path !version_path
  http-request set-path / if {{ path -m len 0 }}
  use_backend %[var(txn.backend)]
""" + "".join(backends)  # noqa: E501
