"""The stable address: HAProxy (Debian's package) in front of every model that serves.

Chosen by measurement (docs/performance.md#choosing-the-gateway-issue-13): a version switch
and a model joining or leaving go through HAProxy's Runtime API on its admin socket (server
slots and map files, `maas.operate.gateway_routes`), so nothing reloads and no client
connection is closed; the catalog is files HAProxy's Lua reads (`gateway_catalog`). A switch
puts the new version's address into the model's spare slot, makes it ready and puts the live
one in maintenance (its requests in flight finish; changing the live slot's address instead
would leave HAProxy reusing its idle connections to the old container); HAProxy retries a
request whose upstream connection failed before any response byte. The configuration and
the maps are rendered from the routing table (gateway.json), the configuration checked with
`haproxy -c` before a start or reload (an invalid one is refused and the running one stays),
so a restarted gateway serves what the table says. The table records only what HAProxy
confirmed; where it is in doubt it is read back from HAProxy (`gateway_live`). HAProxy runs
in master-worker mode in its own session: a controller restart never interrupts serving, and
the controller starts it again when it is gone.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import resource
import signal
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from maas.config.sections import GatewayParams
from maas.errors import DeployError
from maas.files import write_text_atomic
from maas.net import port_open, wait_until
from maas.operate.gateway_admin import HAProxyAdmin, haproxy
from maas.operate.gateway_catalog import CatalogFiles
from maas.operate.gateway_live import live_table, parse_map, parse_servers
from maas.operate.gateway_metrics import MetricsFiles, metrics_address_free
from maas.operate.gateway_routes import (
    FORMAT,
    MODEL_NAME,
    POOL,
    SLOTS,
    Listen,
    MapFiles,
    Route,
    RouteTable,
    metrics_frontend,
    render,
    route_map,
    slot_servers,
)
from maas.operate.gateway_socket import make_private

log = logging.getLogger(__name__)
FD_SPARE = 64  # file descriptors HAProxy needs beyond two per connection (listeners, logs)


class Gateway(HAProxyAdmin):
    """HAProxy on `host:port`, its files in `folder` (gateway.cfg, .json, .pid, .log, the
    maps, the catalog) and its admin socket in the private `folder/admin` (0700)."""

    reload_timeout_s = 15.0

    def __init__(
        self,
        folder: Path,
        host: str,
        port: int,
        default: str | None = None,
        *,
        limits: GatewayParams | None = None,
    ) -> None:
        folder = folder.resolve()  # HAProxy reads a relative socket path as host:port
        super().__init__(folder)
        self.host, self.port = host, port
        self.default = default  # the model un-prefixed paths (/predict) reach
        self.limits = limits or GatewayParams.model_validate({})
        self.table_file = folder / "gateway.json"
        self.log_file = folder / "gateway.log"
        self.maps = MapFiles.at(folder)
        self.catalog = CatalogFiles(folder)
        self.metrics = MetricsFiles(folder, self.limits.metrics_listen)  # gateway_metrics

    def table(self) -> RouteTable:
        table = RouteTable.read(self.table_file)
        table.default = self.default or table.default
        return table

    def listen(self) -> Listen:
        return Listen(
            self.host,
            self.port,
            self.socket_file,
            maxconn=fitting_maxconn(self.limits.maxconn),
            rate_limit=self.limits.rate_limit,
            metrics=self.limits.metrics_listen,
        )

    def checked_config(self, table: RouteTable) -> Path:
        """The configuration for `table`, written beside the live one and checked with
        `haproxy -c`; put it in place with `os.replace` (a refused one never is)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        make_private(self.socket_file.parent)
        try:
            self.maps.write(table)  # the check reads them
            self.catalog.write_lua()
            candidate = self.config_file.with_suffix(".cfg.new")
            candidate.write_text(render(table, self.listen()))
        except OSError as error:
            raise DeployError(f"cannot write the gateway's configuration: {error}") from None
        checked = subprocess.run(
            [haproxy(), "-c", "-f", str(candidate)], capture_output=True, text=True, timeout=30
        )
        if checked.returncode != 0:
            candidate.unlink(missing_ok=True)
            said = checked.stderr + checked.stdout
            alerts = [line for line in said.splitlines() if "ALERT" in line] or [said]
            raise DeployError(
                f"haproxy -c refused the gateway configuration: {' '.join(alerts).strip()[-500:]}"
            )
        return candidate

    def ensure(self) -> None:
        """Start the gateway unless it runs, serving what the routing table says; refuse an
        address another process holds (a dev server, another project's gateway): it would
        answer for us. A running gateway of an older configuration format is reloaded."""
        if self.running() and port_open(self.host, self.port):
            if self._outdated():
                self.reload(self.table())
            return
        if self.pid_file.is_file():  # our master died: its workers see it and exit
            wait_until(lambda: not port_open(self.host, self.port), 10, 0.1)
        if port_open(self.host, self.port):
            raise DeployError(
                f"{self.host}:{self.port} (deploy.address) is held by another process: stop it "
                "(e.g. `maas serve`) or choose another deploy.address"
            )
        metrics_address_free(self.limits.metrics_listen, self.host, self.port)
        self.stop()  # a master whose listener is gone
        table = self.table()
        table.pool = max(table.pool, POOL * (len(table.routes) // POOL + 1))
        for route in table.routes.values():  # a starting process serves each from blue
            route.live = SLOTS[0]
        os.replace(self.checked_config(table), self.config_file)
        self.socket_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [haproxy(), "-W", "-db", "-f", str(self.config_file)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        started = lambda: port_open(self.host, self.port) and self._worker() is not None  # noqa: E731
        if not wait_until(started, 15, 0.1):
            raise DeployError(
                f"the gateway did not open {self.host}:{self.port} (see {self.log_file}; "
                "is the port taken?)"
            )
        table.worker = self._worker()
        self._record(table)

    def _record(self, table: RouteTable) -> None:
        """The table (what a starting gateway serves) and the catalog and metrics files it
        says."""
        try:
            table.write(self.table_file)
            self.catalog.write(table.catalog, sorted(table.served()))
            self.metrics.write(table)
        except OSError as error:
            raise DeployError(f"cannot record the gateway's table: {error}") from None

    def _files(self, table: RouteTable) -> None:
        """The configuration and the maps as `table` says, live slots included: what the
        master reads if it reloads unasked (or late), and serves the same. Checked before
        every reload of ours; a failure here changes nothing that serves."""
        with contextlib.suppress(OSError):
            self.maps.write(table)
            write_text_atomic(self.config_file, render(table, self.listen()))

    def _outdated(self) -> bool:
        """The configuration in place is of an older format (an older maas wrote it), or
        has another metrics frontend than deploy.gateway.metrics_listen says."""
        if not self.config_file.is_file():
            return False
        text = self.config_file.read_text(errors="replace")
        wanted = metrics_frontend(self.listen())
        has_metrics = "\nfrontend metrics\n" in text
        return FORMAT not in text or (wanted not in text if wanted else has_metrics)

    def live(self) -> RouteTable:
        """What the running gateway serves, read back from it (`show servers state`, `show
        map`), with the recorded catalog and default."""
        return live_table(
            self.table(),
            servers=parse_servers(self._expect("show servers state", "be_id")),
            routes=parse_map(self.command(f"show map {self.maps.routes.name}")),
            versions=parse_map(self.command(f"show map {self.maps.versions.name}")),
            worker=self._worker(),
        )

    def _current(self) -> RouteTable:
        """The recorded table, or, where it is in doubt (another worker than the one that
        confirmed it, routes other than HAProxy's), what HAProxy serves, recorded."""
        table = self.table()
        worker = self._worker()
        if worker is None or self._outdated():  # an older gateway: reloaded from the table
            return table
        live_routes = parse_map(self.command(f"show map {self.maps.routes.name}"))
        if worker == table.worker and live_routes == route_map(table):
            return table
        log.warning("the gateway's table disagreed with HAProxy: recording what HAProxy serves")
        return self._converge()

    def _converge(self) -> RouteTable:
        """What HAProxy serves, recorded, and the files a reload would read as it says."""
        table = self.live()
        self._record(table)
        self._files(table)
        return table

    def reload(self, table: RouteTable) -> None:
        """A new configuration (a bigger pool, more replicas, a newer format) without closing
        the listener: the master re-reads it and starts a new worker (SIGUSR2), the old one
        finishes the requests it has. Idle keep-alive connections are closed, so a request
        may need its client's retry: only these changes reload, never a switch. The table is
        recorded once the new worker answers; a reload that does not show leaves what HAProxy
        serves recorded."""
        before = self._worker()
        table = copy.deepcopy(table)
        for route in table.routes.values():  # a new worker serves each from blue
            route.live = SLOTS[0]
        os.replace(self.checked_config(table), self.config_file)
        os.kill(int(self.pid_file.read_text()), signal.SIGUSR2)
        if not wait_until(lambda: self._worker() not in (None, before), self.reload_timeout_s, 0.1):
            with contextlib.suppress(DeployError):
                self._converge()
            raise DeployError(
                f"the gateway did not reload {self.config_file} (see {self.log_file})"
            )
        table.worker = self._worker()
        self._record(table)

    def _push(self, table: RouteTable) -> None:
        """The running process's maps as `table` says, each replaced atomically (prepare,
        add, commit)."""
        for path, entries in self.maps.entries(table).items():
            answer = self._expect(f"prepare map {path.name}", "New version created")
            version = re.search(r"created: (\d+)", answer)
            if version is None:
                raise DeployError(f"the gateway did not prepare {path.name}: {answer}")
            for key, value in entries.items():
                self._expect(f"add map @{version[1]} {path.name} {key} {value}")
            self._expect(f"commit map @{version[1]} {path.name}")

    def _apply(self, table: RouteTable) -> None:
        """`table`'s maps in the running process, then recorded (a restarted gateway serves
        the same). A gateway an older maas started has other backends than the maps name:
        it is reloaded with `table` instead."""
        if self._outdated():
            self.reload(table)
            return
        self._push(table)
        self._record(table)
        self._files(table)

    def switch(
        self, model: str, upstreams: list[int], version: str, *, restoring: bool = False
    ) -> None:
        """New requests for `model` go to 127.0.0.1:`upstreams` (the replicas where `version`
        runs, balanced) from now on; requests already on the old servers finish there. No
        reload: the running process swaps the model's server slots, and a new model takes a
        free backend. If any step fails (or we are stopped), the old slot serves alone
        again and the maps are the old ones. `restoring`: this switch puts back what served
        before a failed deploy, and stands even where the table cannot be recorded (a full
        disk): the next switch finds the table in doubt and records what HAProxy serves."""
        if not re.fullmatch(MODEL_NAME, model):
            raise DeployError(f"model name {model!r} cannot be a gateway route")
        # the version reaches the Runtime API's command lines (the version map), where a
        # newline would be a command of its own: a registry's version is a number
        if not re.fullmatch(r"[0-9]{1,9}", version):
            raise DeployError(f"{model}: version {version!r} is not a version number")
        if not upstreams:
            raise DeployError(f"{model}: no replica to switch to")
        for port in upstreams:  # HAProxy would wrap 70000 to 4464
            if not 0 < port < 65536:
                raise DeployError(f"{model}: port {port} is not a TCP port")
        table = self._current()
        if self._outdated():  # an older maas's gateway: other maps, other backends
            self.reload(table)
            table = self.table()
        if table.backend_for(model) is None or len(upstreams) > table.replicas:
            # the pool is full, or more replicas than slots hold: a bigger configuration
            table.pool += POOL if table.backend_for(model) is None else 0
            table.replicas = max(table.replicas, len(upstreams))
            self.reload(table)
            table = self.table()
        route = table.routes.get(model) or Route(str(table.backend_for(model)))
        live = route.live if route.ports else SLOTS[1]
        spare = SLOTS[1] if live == SLOTS[0] else SLOTS[0]
        spares = slot_servers(route.backend, spare, table.replicas)
        lives = slot_servers(route.backend, live, table.replicas)
        before = copy.deepcopy(table)  # what serves until the maps below are committed
        try:
            self._point(spares, upstreams)
            table.routes[model] = Route(route.backend, list(upstreams), version, spare)
            self._push(table)  # routed, and the new version reachable by number
        except BaseException:
            self._undo(before, lives[: len(route.ports)], spares)
            raise
        try:
            self._record(table)
            self._files(table)
        except BaseException as error:
            if not (restoring and isinstance(error, DeployError)):
                self._undo(before, lives[: len(route.ports)], spares)
                raise
            log.warning("%s: switched back, unrecorded (%s)", model, error)
        # switched: the old slot takes no new request (none is routed there any more) and
        # those in flight finish; a refusal here changes nothing for clients, so it is said,
        # not rolled back
        for target in lives if route.ports else []:
            try:
                self._expect(f"set server {target} state maint")
            except DeployError as error:
                log.warning("%s: the old slot stays ready, unrouted: %s", model, error)

    def _point(self, servers: list[str], ports: list[int], weight: int | None = None) -> None:
        """`servers` at `ports` (with `weight`, set before they turn ready) and ready, in order;
        those beyond the ports in maintenance."""
        for index, target in enumerate(servers):
            if index >= len(ports):
                self._expect(f"set server {target} state maint")
                continue
            self._expect(
                f"set server {target} addr 127.0.0.1 port {ports[index]}",
                "changed",
                "no need to change",
            )
            if weight is not None:
                self._expect(f"set server {target} weight {weight}")
            self._expect(f"set server {target} state ready")

    def _undo(self, before: RouteTable, lives: list[str], spares: list[str]) -> None:
        """A switch that failed: the old slot's servers ready, the old maps, the spare slot in
        maintenance, the old table recorded; each step whatever the others did."""
        steps: list[Callable[[], object]] = [
            *[partial(self._expect, f"set server {target} state ready") for target in lives],
            partial(self._push, before),
            *[partial(self._expect, f"set server {target} state maint") for target in spares],
            partial(self._record, before),
            partial(self._files, before),
        ]
        for step in steps:
            try:
                step()
            except Exception as error:  # the next step still runs
                log.warning("undoing a failed switch: %s", error)

    def remove(self, model: str) -> None:
        """`model` leaves the gateway: its paths answer 404, its slots are emptied."""
        running = self.running()
        table = self._current() if running else self.table()
        route = table.routes.pop(model, None)
        table.catalog.pop(model, None)
        if route is None or not running:
            self._record(table)
            return
        self._apply(table)
        for slot in SLOTS:
            for target in slot_servers(route.backend, slot, table.replicas):
                self._expect(f"set server {target} state maint")

    def publish(self, catalog: dict[str, dict[str, Any]]) -> None:
        """What `GET /models` answers from now on (an entry per model): files the gateway
        reads on each request, the same whether it runs or not, of any size."""
        table = self.table()
        table.catalog = catalog
        self._record(table)


def fitting_maxconn(configured: int) -> int:
    """`configured`, or fewer where this process's file descriptor limit (which HAProxy
    inherits) holds fewer: HAProxy needs two per connection and refuses to start otherwise
    ("Cannot raise FD limit")."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or configured <= (hard - FD_SPARE) // 2:
        return configured
    fitting = max(1, (hard - FD_SPARE) // 2)
    log.warning("deploy.gateway.maxconn %d: %d fit the file limit %d", configured, fitting, hard)
    return fitting
