"""A progressive rollout at the gateway: the candidate beside the live version, by weight.

The candidate's replicas go into the model's spare slot (reachable alone by its version's
path) and into the model's canary backend, which holds both slots' servers with weights; the
routes map then sends the model's requests to the canary backend. A new share is `set server
<backend>/<server> weight N` over the Runtime API: no reload, no connection closed. The table
records the weights too, so a restarted or reloaded gateway serves the same split. Promoting
makes the spare slot the live one (the switch's last step); ending the canary otherwise
routes the model back to its live slot. Only a sticky header other than the rendered one
needs a new configuration (a graceful reload).
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import re
from dataclasses import dataclass

from maas.errors import DeployError
from maas.operate.gateway import Gateway
from maas.operate.gateway_routes import (
    CANARY,
    MODEL_NAME,
    Canary,
    Route,
    RouteTable,
    balance,
    canary_weights,
    slot_backend,
    slot_servers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    """What one version's servers in the canary backend answered, cumulative since the
    gateway's worker started (HAProxy's `show stat`): responses, 5xx answers and failed
    connections or responses (what a client sees as an error)."""

    requests: int = 0
    errors: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.errors - other.errors)


def _route(table: RouteTable, model: str) -> Route:
    route = table.routes.get(model)
    if route is None or not route.ports:
        raise DeployError(f"{model}: nothing serves it at the gateway, so nothing to canary beside")
    return route


def _check(model: str, ports: list[int], version: str, weight: int) -> None:
    if not re.fullmatch(MODEL_NAME, model):
        raise DeployError(f"model name {model!r} cannot be a gateway route")
    if not re.fullmatch(r"[0-9]{1,9}", version):
        raise DeployError(f"{model}: version {version!r} is not a version number")
    if not ports or any(not 0 < port < 65536 for port in ports):
        raise DeployError(f"{model}: the candidate's ports {ports} are not TCP ports")
    if not 0 <= weight <= 100:
        raise DeployError(f"{model}: a canary weight is a percent, not {weight}")


def _rendered_balance(gateway: Gateway, backend: str) -> str | None:
    """The balance line(s) the running configuration gives `backend`'s canary backend."""
    try:
        text = gateway.config_file.read_text()
    except OSError:
        return None
    found = re.search(
        rf"^backend {re.escape(slot_backend(backend, CANARY))}\n((?:  (?:balance|hash-type).*\n)+)",
        text,
        re.MULTILINE,
    )
    return "\n  ".join(line.strip() for line in found[1].splitlines()) if found else None


def _weigh(gateway: Gateway, route: Route, replicas: int) -> None:
    """The canary backend's servers: each slot's ports, weights and state as `route` says."""
    held = {route.live: route.ports, route.spare: route.canary.ports if route.canary else []}
    weights = canary_weights(route, replicas)
    for slot, ports in held.items():
        gateway._point(_slot_in_canary(route.backend, slot, replicas), ports, weights[slot])


def start_canary(
    gateway: Gateway, model: str, ports: list[int], version: str, *, weight: int, sticky: str | None
) -> None:
    """`version` (running on 127.0.0.1:`ports`) takes `weight` percent of `model`'s requests,
    the live version the rest. If a step fails, the live version serves alone again."""
    _check(model, ports, version, weight)
    table = gateway._current()
    route = _route(table, model)
    before = copy.deepcopy(table)
    route.canary = Canary(list(ports), version, weight, sticky)
    rendered = _rendered_balance(gateway, route.backend)
    if len(ports) > table.replicas or rendered != balance(route.canary):
        table.replicas = max(table.replicas, len(ports))
        gateway.reload(table)  # a new configuration renders the canary as the table says
        return
    spares = slot_servers(route.backend, route.spare, table.replicas)
    try:
        gateway._point(spares, ports)  # as a switch readies its spare slot
        _weigh(gateway, route, table.replicas)
        gateway._push(table)  # the model's requests now reach the canary backend
        gateway._record(table)
    except BaseException:
        # as a failed switch is undone: the old maps and table, the readied servers in maint
        gateway._undo(before, [], [*spares, *_canary_servers(route, table.replicas)])
        raise
    gateway._files(table)


def set_weight(gateway: Gateway, model: str, weight: int) -> None:
    """The candidate's share becomes `weight` percent (the live version's the rest): weights
    over the Runtime API, then recorded."""
    table = gateway._current()
    route = _route(table, model)
    if route.canary is None:
        raise DeployError(f"{model}: no candidate runs beside v{route.version} at the gateway")
    _check(model, route.canary.ports, route.canary.version, weight)
    route.canary.weight = weight
    weights = canary_weights(route, table.replicas)
    for slot, count in ((route.live, len(route.ports)), (route.spare, len(route.canary.ports))):
        for name in _slot_in_canary(route.backend, slot, table.replicas)[:count]:
            gateway._expect(f"set server {name} weight {weights[slot]}")
    gateway._record(table)
    gateway._files(table)


def end_canary(gateway: Gateway, model: str, *, promote: bool) -> None:
    """The rollout ends: `promote`, the candidate becomes the live version (the old slot takes
    no new request; those in flight finish); otherwise the live version serves alone again.
    Either way the canary backend is emptied. Nothing to end: nothing changes."""
    table = gateway._current()
    route = table.routes.get(model)
    if route is None or route.canary is None:
        return
    canary = route.canary
    old_live, old_spare = route.live, route.spare
    if promote:
        table.routes[model] = Route(route.backend, list(canary.ports), canary.version, old_spare)
        leaving = slot_servers(route.backend, old_live, table.replicas)
    else:
        route.canary = None
        leaving = slot_servers(route.backend, old_spare, table.replicas)
    gateway._push(table)
    gateway._record(table)
    gateway._files(table)
    for server in [*leaving, *_canary_servers(route, table.replicas)]:
        try:
            gateway._expect(f"set server {server} state maint")
        except DeployError as error:  # unrouted: no client reaches it
            log.warning("%s: %s stays ready, unrouted: %s", model, server, error)


def canary_counts(gateway: Gateway, model: str) -> dict[str, Counts]:
    """The live version's and the candidate's counts in the canary backend (`show stat`),
    keyed `champion` and `candidate`, each summed over its replicas."""
    table = gateway.table()
    route = _route(table, model)
    if route.canary is None:
        raise DeployError(f"{model}: no candidate runs beside v{route.version} at the gateway")
    answer = gateway._expect("show stat -1 4 -1", "pxname")
    rows = csv.DictReader(io.StringIO(answer.removeprefix("# ")))
    found = {"champion": Counts(), "candidate": Counts()}
    backend = slot_backend(route.backend, CANARY)
    for row in rows:
        if row.get("pxname") != backend:
            continue
        role = "champion" if row["svname"].startswith(route.live) else "candidate"
        errors = int(row.get("hrsp_5xx") or 0) + int(row.get("eresp") or 0)
        errors += int(row.get("econ") or 0)
        requests = sum(int(row.get(f"hrsp_{n}xx") or 0) for n in range(1, 6)) + int(
            row.get("hrsp_other") or 0
        )
        requests += int(row.get("eresp") or 0) + int(row.get("econ") or 0)
        found[role] = Counts(found[role].requests + requests, found[role].errors + errors)
    return found


def _slot_in_canary(backend: str, slot: str, replicas: int) -> list[str]:
    """A slot's servers inside the canary backend: `b0-canary/blue`, `b0-canary/blue2`, ..."""
    return [
        f"{slot_backend(backend, CANARY)}/{name.split('/', 1)[1]}"
        for name in slot_servers(backend, slot, replicas)
    ]


def _canary_servers(route: Route, replicas: int) -> list[str]:
    return [
        *_slot_in_canary(route.backend, route.live, replicas),
        *_slot_in_canary(route.backend, route.spare, replicas),
    ]
