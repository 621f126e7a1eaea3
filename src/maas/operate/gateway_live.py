"""What a running gateway serves, read back through HAProxy's Runtime API.

The routing table (gateway.json) is what a starting gateway serves; the running one may have
moved on without it: a reload that took effect late (or never), a record a full disk refused.
When the table and HAProxy disagree, the gateway converges from this, never the reverse: maps
pushed from a stale table would name a slot in maintenance, or servers HAProxy does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maas.operate.gateway_routes import (
    CANARY,
    DEFAULT,
    NO_SERVER_PORT,
    SLOTS,
    Canary,
    Route,
    RouteTable,
    slot_backend,
)

MAINTENANCE = 0x01  # srv_admin_state: forced maintenance (`set server ... state maint`)


@dataclass(frozen=True)
class Server:
    port: int
    ready: bool
    weight: int = 1


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
        server = Server(int(row["srv_port"]), ready, int(row.get("srv_uweight", "1")))
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
        if slot == CANARY:
            table.routes[model] = canary_route(recorded.routes.get(model), name, servers, versions)
            continue
        version = next(
            (
                key.split("/", 1)[1]
                for key, value in versions.items()
                if key.startswith(f"{model}/") and value == backend
            ),
            None,
        )
        table.routes[model] = Route(name, ready_ports(servers.get(backend, [])), version, slot)
    held = {route.backend for route in table.routes.values()}
    for model, route in recorded.routes.items():  # out of service: it keeps its backend
        inside = int(route.backend[1:]) < pool if route.backend[1:].isdigit() else False
        if model not in table.routes and route.backend not in held and inside:
            table.routes[model] = Route(route.backend, live=route.live)
            held.add(route.backend)
    return table


def ready_ports(listed: list[Server]) -> list[int]:
    """A slot's replicas: its ready servers' ports (else those it holds in maintenance)."""
    return [s.port for s in listed if s.ready] or [
        s.port for s in listed if s.port != NO_SERVER_PORT
    ]


def canary_route(
    recorded: Route | None,
    name: str,
    servers: dict[str, list[Server]],
    versions: dict[str, str],
) -> Route:
    """A model routed to its canary backend: which slot holds the candidate is the recorded
    candidate's version's slot in the versions map (else the slot of the higher version), its
    share the canary backend's weights."""
    model_versions = {  # version -> slot, of this pool entry's slots
        key.split("/", 1)[1]: value.rsplit("-", 1)[1]
        for key, value in versions.items()
        if value.rsplit("-", 1)[0] == name
    }
    known = recorded.canary.version if recorded and recorded.canary else None
    if known not in model_versions:
        known = max(model_versions, key=int, default=None)
    spare = model_versions.get(known or "", SLOTS[1])
    live = SLOTS[0] if spare == SLOTS[1] else SLOTS[1]
    version = next((v for v, slot in model_versions.items() if slot == live), None)
    weighted = servers.get(slot_backend(name, CANARY), [])
    half = len(weighted) // 2  # the canary backend lists blue's servers, then green's
    by_slot = {SLOTS[0]: weighted[:half], SLOTS[1]: weighted[half:]}
    shares = {slot: sum(s.weight for s in by_slot[slot] if s.ready) for slot in SLOTS}
    total = sum(shares.values())
    weight = round(100 * shares[spare] / total) if total else 0
    sticky = recorded.canary.sticky if recorded and recorded.canary else None
    candidate = Canary(
        ready_ports(servers.get(slot_backend(name, spare), [])), str(known), weight, sticky
    )
    return Route(
        name, ready_ports(servers.get(slot_backend(name, live), [])), version, live, candidate
    )
