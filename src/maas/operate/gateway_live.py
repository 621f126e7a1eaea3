"""What a running gateway serves, read back through HAProxy's Runtime API.

The routing table (gateway.json) is what a starting gateway serves; the running one may have
moved on without it: a reload that took effect late (or never), a record a full disk refused.
When the table and HAProxy disagree, the gateway converges from this, never the reverse: maps
pushed from a stale table would name a slot in maintenance, or servers HAProxy does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maas.operate.gateway_routes import DEFAULT, NO_SERVER_PORT, Route, RouteTable

MAINTENANCE = 0x01  # srv_admin_state: forced maintenance (`set server ... state maint`)


@dataclass(frozen=True)
class Server:
    port: int
    ready: bool


def parse_map(answer: str) -> dict[str, str]:
    """`show map <file>`: one `<ref> <key> <value>` line per entry."""
    entries = {}
    for line in answer.splitlines():
        parts = line.split()
        if len(parts) == 3:
            entries[parts[1]] = parts[2]
    return entries


def parse_servers(answer: str) -> dict[str, list[Server]]:
    """`show servers state`: each backend's servers, in their configured order."""
    lines = answer.splitlines()
    header = next((line for line in lines if line.startswith("# be_id")), "")
    columns = header.removeprefix("# ").split()
    rows = [dict(zip(columns, line.split(), strict=False)) for line in lines]
    found: dict[str, list[tuple[int, Server]]] = {}
    for row in rows:
        if len(row) != len(columns) or not row.get("srv_id", "").isdigit():
            continue
        ready = not int(row["srv_admin_state"]) & MAINTENANCE
        server = Server(int(row["srv_port"]), ready)
        found.setdefault(row["be_name"], []).append((int(row["srv_id"]), server))
    return {
        name: [server for _, server in sorted(listed, key=lambda pair: pair[0])]
        for name, listed in found.items()
    }


def live_table(
    recorded: RouteTable,
    *,
    servers: dict[str, list[Server]],
    routes: dict[str, str],
    versions: dict[str, str],
    worker: str | None,
) -> RouteTable:
    """The table HAProxy serves: its pool and servers per slot from its backends, each model's
    live slot from the routes map, its version from the versions map, its replicas from the
    slot's ready servers; the catalog and the default model as recorded."""
    pool = sum(1 for name in servers if re.fullmatch(r"b[0-9]+-blue", name))
    table = RouteTable(
        default=recorded.default,
        pool=pool,
        replicas=len(servers.get("b0-blue", [])) or recorded.replicas,
        catalog=recorded.catalog,
        worker=worker,
    )
    for model, backend in sorted(routes.items()):
        if model == DEFAULT or "-" not in backend:
            continue
        name, slot = backend.rsplit("-", 1)
        slot_servers = servers.get(backend, [])
        ports = [s.port for s in slot_servers if s.ready] or [
            s.port for s in slot_servers if s.port != NO_SERVER_PORT
        ]
        version = next(
            (
                key.split("/", 1)[1]
                for key, value in versions.items()
                if key.startswith(f"{model}/") and value == backend
            ),
            None,
        )
        table.routes[model] = Route(name, ports, version, slot)
    held = {route.backend for route in table.routes.values()}
    for model, route in recorded.routes.items():  # out of service: it keeps its backend
        inside = int(route.backend[1:]) < pool if route.backend[1:].isdigit() else False
        if model not in table.routes and route.backend not in held and inside:
            table.routes[model] = Route(route.backend, live=route.live)
            held.add(route.backend)
    return table
