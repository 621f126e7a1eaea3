"""The gateway's routing table and the HAProxy configuration rendered from it.

One HAProxy frontend serves every model: `/models/<name>/...` reaches the slot where that
model's live version runs, with the prefix removed, `/models/<name>/versions/<N>/...` the slot
where version N runs (404 once another version took over), `GET /models` and
`GET /models/<name>` answer the catalog, and any other path reaches the default task's
model. Each model holds one of a pool of backend pairs, `bN-blue` and `bN-green` (a slot each,
of `replicas` servers balanced round-robin), and `bN-canary`, which holds both slots' servers
with weights: while a progressive rollout runs, the model's requests reach it and split
between the champion and the candidate by those weights (`maas.operate.gateway_canary`).
Which slot serves a model and which version runs in which slot live in two HAProxy map files,
so that adding a model or switching a version changes a map through the Runtime API and never
reloads the configuration; only a model beyond the pool, more replicas or another sticky
header make a new configuration (a graceful reload). The catalog is files
HAProxy's Lua reads (`maas.operate.gateway_catalog`).
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
DEFAULT = "*default"  # a map key no model name can take
FORMAT = "maas gateway format 5"  # in the configuration: a gateway of another one is reloaded
MODEL_NAME = r"[A-Za-z0-9._-]+"
ROUTES_MAP, VERSIONS_MAP = "routes.map", "versions.map"  # beside the configuration


CANARY = "canary"  # the backend of a pool entry that holds both slots' servers, weighted
WEIGHT_SCALE = 2  # HAProxy weights per percent of a slot's share (a server's weight <= 256)


@dataclass
class Canary:
    """A candidate beside the live version: its replicas (in the spare slot), its version and
    the percent of the model's requests it gets; `sticky`: a header whose hash pins a client
    to one version (None: requests are spread by weight alone)."""

    ports: list[int]
    version: str
    weight: int
    sticky: str | None = None


@dataclass
class Route:
    backend: str  # b0, b1, ...: the pool's pair of slot backends this model uses
    ports: list[int] = field(default_factory=list)  # the live slot's replicas (none: out)
    version: str | None = None  # the version in the live slot
    live: str = SLOTS[0]
    canary: Canary | None = None  # a progressive rollout's candidate, in the spare slot

    def __post_init__(self) -> None:
        if isinstance(self.canary, dict):  # read from gateway.json
            self.canary = Canary(**self.canary)

    @property
    def spare(self) -> str:
        return SLOTS[1] if self.live == SLOTS[0] else SLOTS[0]


def server_weight(percent: int, replicas: int) -> int:
    """The HAProxy weight of each of a slot's `replicas` servers when the slot gets `percent`
    of the requests (0: none; never 0 for a share above 0)."""
    if percent <= 0 or replicas <= 0:
        return 0
    return max(1, round(WEIGHT_SCALE * percent / replicas))


def balance(canary: Canary | None) -> str:
    """The canary backend's balance line: by weight, or by a header's hash (consistent
    hashing, so a weight set at run time takes effect and moves few clients)."""
    if canary is None or canary.sticky is None:
        return "balance roundrobin"
    return f"balance hdr({canary.sticky})\n  hash-type consistent"


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
    worker: str | None = None  # the HAProxy worker (pid) this table was confirmed by

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
    """model -> its live slot's backend for the models in service (the canary backend while a
    rollout runs); `*default` -> the default model's."""
    entries = {
        name: slot_backend(route.backend, CANARY if route.canary else route.live)
        for name, route in sorted(table.served().items())
    }
    if table.default in entries:
        entries[DEFAULT] = entries[str(table.default)]
    return entries


def version_map(table: RouteTable) -> dict[str, str]:
    """`<model>/<version>` -> the backend of the slot it runs in (the live versions: at a
    switch the new version's entry replaces the old one's, whose requests in flight finish)."""
    entries = {}
    for name, r in sorted(table.served().items()):
        entries[f"{name}/{r.version}"] = slot_backend(r.backend, r.live)
        if r.canary is not None:  # the candidate, by its number, alone
            entries[f"{name}/{r.canary.version}"] = slot_backend(r.backend, r.spare)
    return entries


def map_text(entries: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in entries.items())


@dataclass(frozen=True)
class MapFiles:
    """The map files, in the configuration's folder: the configuration and the Runtime API
    name them by file name (`default-path config`), so no folder name reaches a command."""

    routes: Path
    versions: Path

    @classmethod
    def at(cls, folder: Path) -> MapFiles:
        return cls(folder / ROUTES_MAP, folder / VERSIONS_MAP)

    def entries(self, table: RouteTable) -> dict[Path, dict[str, str]]:
        return {self.routes: route_map(table), self.versions: version_map(table)}

    def write(self, table: RouteTable) -> dict[Path, dict[str, str]]:
        """Every map file as `table` says (what a starting HAProxy reads); their entries."""
        maps = self.entries(table)
        for path, entries in maps.items():
            write_text_atomic(path, map_text(entries))
        return maps


@dataclass(frozen=True)
class Listen:
    """Where the gateway listens, its admin socket, and its limits (deploy.gateway)."""

    host: str
    port: int
    socket_file: Path
    maxconn: int = 4096
    rate_limit: int = 0  # requests per client address per 10 s; 0: none
    metrics: str | None = None  # host:port of the Prometheus frontend (None: none)


def config_word(text: str) -> str:
    """`text` as one word of HAProxy's configuration, whatever it holds (spaces, `#`, `$`,
    non-ASCII): single quotes, in which HAProxy expands nothing."""
    if "\n" in text or "\0" in text:
        raise DeployError(f"{text!r}: a gateway path cannot hold a newline")
    return "'" + text.replace("'", "'\\''") + "'"


def slot_ports(route: Route | None) -> dict[str, list[int]]:
    """The ports each slot of `route` holds: the live version's, and the candidate's in the
    spare slot while a rollout runs."""
    held: dict[str, list[int]] = {slot: [] for slot in SLOTS}
    if route is not None and route.ports:
        held[route.live] = list(route.ports)
        if route.canary is not None:
            held[route.spare] = list(route.canary.ports)
    return held


def canary_weights(route: Route | None, replicas: int) -> dict[str, int]:
    """Each slot's servers' weight in the canary backend: the live slot's share is what the
    candidate (in the spare slot) does not get."""
    if route is None or route.canary is None or not route.ports:
        return {slot: 0 for slot in SLOTS}
    candidate = route.canary.weight
    return {
        route.live: server_weight(100 - candidate, len(route.ports)),
        route.spare: server_weight(candidate, len(route.canary.ports)),
    }


def server_lines(
    slot: str, ports: list[int], replicas: int, weight: int | None = None
) -> list[str]:
    """A slot's `server` lines: one per replica, those without a port disabled."""
    lines = []
    weighted = "" if weight is None else f" weight {weight}"
    for number, server in enumerate(servers(slot, replicas)):
        if number < len(ports):
            lines.append(f"  server {server} 127.0.0.1:{ports[number]}{weighted}")
        else:
            lines.append(f"  server {server} 127.0.0.1:{NO_SERVER_PORT} disabled{weighted}")
    return lines


def render(table: RouteTable, listen: Listen) -> str:
    """The HAProxy configuration: one frontend, `table.pool` pairs of slot backends. Every
    file it names but the socket is in its own folder, by file name (`default-path config`);
    the socket's path is quoted (a project path may hold a space or any character)."""
    routes, versions = ROUTES_MAP, VERSIONS_MAP
    catalog = "use-service lua.maas_catalog"  # maas.operate.gateway_catalog
    not_running = (
        '{\\"error\\":\\"version not running\\",\\"model\\":\\"%[var(txn.model),json(utf8s)]\\",'
        '\\"version\\":\\"%[var(txn.version),json(utf8s)]\\"}'
    )
    limit = ""
    if listen.rate_limit:
        limit = f"""  stick-table type ipv6 size 100k expire 30s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {listen.rate_limit} }}
"""
    backends = []
    for index in range(table.pool):
        name = f"b{index}"
        route = next((r for r in table.routes.values() if r.backend == name), None)
        held = slot_ports(route)
        for slot in SLOTS:
            lines = [f"backend {slot_backend(name, slot)}", "  balance roundrobin"]
            lines += server_lines(slot, held[slot], table.replicas)
            backends.append("\n".join(lines) + "\n")
        canary = route.canary if route is not None and route.ports else None
        lines = [f"backend {slot_backend(name, CANARY)}", f"  {balance(canary)}"]
        for slot, weight in canary_weights(route, table.replicas).items():
            lines += server_lines(slot, held[slot] if canary else [], table.replicas, weight)
        backends.append("\n".join(lines) + "\n")
    frontend = f"""# {FORMAT}: rendered by maas (maas.operate.gateway_routes) from gateway.json beside it
global
  master-worker
  default-path config
  maxconn {listen.maxconn}
  stats socket {config_word(str(listen.socket_file))} mode 600 level admin expose-fd listeners
  lua-load catalog.lua
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
  bind {listen.host}:{listen.port}
  maxconn {listen.maxconn}
{limit}  acl model_path path_beg /models/
  acl catalog_path path /models /models/
  http-request set-var(txn.answer) str(list) if METH_GET catalog_path
  http-request {catalog} if METH_GET catalog_path
  http-request set-var(txn.model) path,field(3,/) if model_path
  http-request set-var(txn.model_json) var(txn.model),json(utf8s) if model_path
  http-request set-var(txn.backend) var(txn.model),map({routes}) if model_path {{ var(txn.model) -m reg ^{MODEL_NAME}$ }}
  acl entry_path path_reg ^/models/{MODEL_NAME}/?$
  http-request set-var(txn.answer) str(entry) if METH_GET entry_path {{ var(txn.model),lua.maas_has_entry -m int 1 }}
  http-request {catalog} if {{ var(txn.answer) -m str entry }}
  http-request set-var(txn.answer) str(unknown) if model_path !{{ var(txn.backend) -m found }}
  http-request {catalog} if {{ var(txn.answer) -m str unknown }}
  acl version_path path_reg ^/models/{MODEL_NAME}/versions/[0-9]+(/|$)
  http-request set-var(txn.version) path,field(5,/) if version_path
  http-request set-var(txn.slot) var(txn.model),concat(/,txn.version),map({versions}) if version_path
  http-request return status 404 content-type application/json lf-string "{not_running}" if version_path !{{ var(txn.slot) -m found }}
  http-request set-var(txn.backend) var(txn.slot) if version_path
  http-request del-header X-Forwarded-Prefix
  http-request set-header X-Forwarded-Prefix /models/%[var(txn.model)] if model_path !version_path
  http-request set-header X-Forwarded-Prefix /models/%[var(txn.model)]/versions/%[var(txn.version)] if version_path
  http-request set-var(txn.backend) str({DEFAULT}),map({routes}) if !model_path
  http-request set-var(txn.answer) str(no_default) if !model_path !{{ var(txn.backend) -m found }}
  http-request {catalog} if {{ var(txn.answer) -m str no_default }}
  # the prefix goes last: the rules above read the path as the client sent it
  http-request set-path %[path,regsub(^/models/[^/]+/versions/[0-9]+,)] if version_path
  http-request set-path %[path,regsub(^/models/[^/]+,)] if model_path !version_path
  http-request set-path / if {{ path -m len 0 }}
  use_backend %[var(txn.backend)]
"""  # noqa: E501
    return frontend + "".join(backends) + metrics_frontend(listen)


def metrics_frontend(listen: Listen) -> str:
    """HAProxy's own Prometheus exporter and which model each backend serves (the Lua
    service `maas_backends`, from backends.prom: `maas.operate.gateway_metrics`), on a
    frontend of their own: the model's address never answers /metrics."""
    if listen.metrics is None:
        return ""
    return f"""frontend metrics
  bind {listen.metrics}
  http-request use-service prometheus-exporter if {{ path /metrics }}
  http-request use-service lua.maas_backends if {{ path /metrics/backends }}
  http-request return status 404
"""
