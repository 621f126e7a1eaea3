"""The stable address: HAProxy (Debian's package) in front of every model that serves.

Chosen by measurement (docs/performance.md#choosing-the-gateway-issue-13): a version switch,
a model joining or leaving and a new catalog all go through HAProxy's Runtime API on its admin
socket (server slots and map files, `maas.operate.gateway_routes`), so nothing reloads and no
client connection is closed. A switch puts the new version's address into the model's spare
slot, makes it ready and puts the live one in maintenance (its requests in flight finish;
changing the live slot's address instead would leave HAProxy reusing its idle connections to
the old container); HAProxy retries a request whose upstream connection failed before any
response byte. The configuration and the maps are rendered from the routing table
(gateway.json), the configuration checked with `haproxy -c` before it is used (an invalid one
is refused and the running one stays), so a restarted gateway serves what the table says.
HAProxy runs in master-worker mode in its own session: a controller restart never interrupts
serving, and the controller starts it again when it is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from maas.errors import DeployError
from maas.net import port_open, wait_until
from maas.operate.gateway_routes import (
    FORMAT,
    MODEL_NAME,
    POOL,
    SLOTS,
    MapFiles,
    Route,
    RouteTable,
    render,
    slot_servers,
)

log = logging.getLogger(__name__)

COMPLAINTS = ("problem", "can't", "Invalid", "invalid", "No such", "Unknown", "Require")


def haproxy() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise DeployError(
            "haproxy is not installed: the stable address is an HAProxy gateway "
            "(`make system`, or `apt-get install haproxy`)"
        )
    return path


class Gateway:
    """HAProxy on `host:port`, its files in `folder` (gateway.cfg, .json, .sock, .pid, .log,
    and the maps)."""

    def __init__(self, folder: Path, host: str, port: int, default: str | None = None) -> None:
        folder = folder.resolve()  # HAProxy reads a relative socket path as host:port
        self.folder, self.host, self.port = folder, host, port
        self.default = default  # the model un-prefixed paths (/predict) reach
        self.config_file = folder / "gateway.cfg"
        self.table_file = folder / "gateway.json"
        self.socket_file = folder / "gateway.sock"
        if len(str(self.socket_file.resolve())) > 100:  # a Unix socket path holds 107 bytes
            digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
            self.socket_file = Path(tempfile.gettempdir()) / f"maas-gateway-{digest}.sock"
        self.pid_file = folder / "gateway.pid"
        self.log_file = folder / "gateway.log"
        self.maps = MapFiles(folder / "routes.map", folder / "versions.map", folder / "catalog.map")

    def table(self) -> RouteTable:
        table = RouteTable.read(self.table_file)
        table.default = self.default or table.default
        return table

    def checked_config(self, table: RouteTable) -> Path:
        """The configuration for `table`, written beside the live one and checked with
        `haproxy -c`; put it in place with `os.replace` (a refused one never is)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.maps.write(table)  # the check reads them
        candidate = self.config_file.with_suffix(".cfg.new")
        candidate.write_text(render(table, self.host, self.port, self.socket_file, self.maps))
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

    def running(self) -> bool:
        """Our HAProxy master (the process in gateway.pid, on our configuration) is alive."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        # the pid file is ours; a gateway started by an older maas ran from a relative path
        return b"haproxy" in command and b"gateway.cfg" in command

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
        self.stop()  # a master whose listener is gone
        table = self.table()
        table.pool = max(table.pool, POOL * (len(table.routes) // POOL + 1))
        self._configure(table)
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
        if not wait_until(lambda: port_open(self.host, self.port), 15, 0.1):
            raise DeployError(
                f"the gateway did not open {self.host}:{self.port} (see {self.log_file}; "
                "is the port taken?)"
            )

    def command(self, line: str) -> str:
        """One Runtime API command on the admin socket; its answer."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(10)
                sock.connect(str(self.socket_file))
                sock.sendall(line.encode() + b"\n")
                return b"".join(iter(lambda: sock.recv(4096), b"")).decode().strip()
        except OSError as error:
            raise DeployError(f"the gateway's admin socket {self.socket_file}: {error}") from None

    def _expect(self, line: str, *accepted: str) -> str:
        """Run `line`; an answer is a refusal unless it is empty or holds an `accepted`
        phrase and no complaint (HAProxy answers `no need to change the addr, problem
        converting port ...` to a port it cannot take)."""
        answer = self.command(line)
        complaint = any(word in answer for word in COMPLAINTS)
        if answer and (complaint or not any(word in answer for word in accepted)):
            raise DeployError(f"the gateway refused `{line[:120]}`: {answer[:300]}")
        return answer

    def _configure(self, table: RouteTable) -> None:
        """The configuration for `table` checked and put in place (each live version in blue,
        as a starting process serves it), the table recorded."""
        for route in table.routes.values():
            route.live = SLOTS[0]
        os.replace(self.checked_config(table), self.config_file)
        self._record(table)

    def _record(self, table: RouteTable) -> None:
        try:
            table.write(self.table_file)
        except OSError as error:
            raise DeployError(f"cannot write {self.table_file}: {error.strerror}") from None

    def _worker(self) -> str | None:
        """The serving worker's pid (the admin socket is the worker's), None if none answers."""
        try:
            found = re.search(r"^Pid: (\d+)", self.command("show info"), re.MULTILINE)
        except DeployError:
            return None
        return found[1] if found else None

    def _outdated(self) -> bool:
        """The configuration in place is of an older format (an older maas wrote it)."""
        return self.config_file.is_file() and FORMAT not in self.config_file.read_text(
            errors="replace"
        )

    def reload(self, table: RouteTable) -> None:
        """A new configuration (a bigger pool, more replicas, a newer format) without closing
        the listener: the master re-reads it and starts a new worker (SIGUSR2), the old one
        finishes the requests it has. Idle keep-alive connections are closed, so a request
        may need its client's retry: only these changes reload, never a switch."""
        before = self._worker()
        self._configure(table)
        os.kill(int(self.pid_file.read_text()), signal.SIGUSR2)
        if not wait_until(lambda: self._worker() not in (None, before), 15, 0.1):
            raise DeployError(
                f"the gateway did not reload {self.config_file} (see {self.log_file})"
            )

    def _apply(self, table: RouteTable, *paths: Path) -> None:
        """The map files as `table` says, and in the running process the maps `paths` (all
        when none are named), each replaced atomically (prepare, add, commit); then the
        table recorded: a restarted gateway serves the same. A gateway an older maas started
        has other backends than the maps name: it is reloaded with `table` instead."""
        if self._outdated():
            self.reload(table)
            return
        try:
            maps = self.maps.write(table)
        except OSError as error:
            raise DeployError(f"cannot write the gateway's maps: {error.strerror}") from None
        for path, entries in maps.items():
            if paths and path not in paths:
                continue
            answer = self._expect(f"prepare map {path}", "New version created")
            version = re.search(r"created: (\d+)", answer)
            if version is None:
                raise DeployError(f"the gateway did not prepare {path}: {answer}")
            for key, value in entries.items():  # one entry per command: a value may be long
                self._expect(f"add map @{version[1]} {path} <<\n{key} {value}\n")
            self._expect(f"commit map @{version[1]} {path}")
        self._record(table)

    def switch(self, model: str, upstreams: list[int], version: str) -> None:
        """New requests for `model` go to 127.0.0.1:`upstreams` (the replicas where `version`
        runs, balanced) from now on; requests already on the old servers finish there. No
        reload: the running process swaps the model's server slots, and a new model takes a
        free backend. If any step fails (or we are stopped), the old slot serves alone
        again and the maps are the old ones."""
        if not re.fullmatch(MODEL_NAME, model):
            raise DeployError(f"model name {model!r} cannot be a gateway route")
        # the version reaches the Runtime API's command lines (the version map), where a
        # newline would be a command of its own: a registry's version is a number
        if not re.fullmatch(r"[0-9]{1,9}", version):
            raise DeployError(f"{model}: version {version!r} is not a version number")
        if not upstreams:
            raise DeployError(f"{model}: no replica to switch to")
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
        routes = (self.maps.routes, self.maps.versions)
        lives = slot_servers(route.backend, live, table.replicas)
        before = self.table()  # what serves until the maps below are committed
        try:
            for index, target in enumerate(spares):
                if index >= len(upstreams):
                    self._expect(f"set server {target} state maint")
                    continue
                if not 0 < upstreams[index] < 65536:  # HAProxy would wrap 70000 to 4464
                    raise DeployError(f"{model}: port {upstreams[index]} is not a TCP port")
                self._expect(
                    f"set server {target} addr 127.0.0.1 port {upstreams[index]}",
                    "changed",
                    "no need to change",
                )
                self._expect(f"set server {target} state ready")
            table.routes[model] = Route(route.backend, list(upstreams), version, spare)
            self._apply(table, *routes)  # routed, and the new version reachable by number
        except BaseException:
            with contextlib.suppress(Exception):  # the old slot alone again, the old maps
                for target in lives[: len(route.ports)]:
                    self._expect(f"set server {target} state ready")
                self._apply(before, *routes)
                for target in spares:
                    self._expect(f"set server {target} state maint")
            raise
        # switched: the old slot takes no new request (none is routed there any more) and
        # those in flight finish; a refusal here changes nothing for clients, so it is said,
        # not rolled back
        for target in lives if route.ports else []:
            try:
                self._expect(f"set server {target} state maint")
            except DeployError as error:
                log.warning("%s: the old slot stays ready, unrouted: %s", model, error)

    def remove(self, model: str) -> None:
        """`model` leaves the gateway: its paths answer 404, its slots are emptied."""
        table = self.table()
        route = table.routes.pop(model, None)
        table.catalog.pop(model, None)
        if route is None or not self.running():
            self._record(table)
            return
        self._apply(table)
        for slot in SLOTS:
            for target in slot_servers(route.backend, slot, table.replicas):
                self._expect(f"set server {target} state maint")

    def publish(self, catalog: dict[str, dict[str, Any]]) -> None:
        """What `GET /models` answers from now on (an entry per model)."""
        table = self.table()
        table.catalog = catalog
        if self.running():
            self._apply(table, self.maps.catalog)
        else:
            self._record(table)

    def stop(self) -> None:
        """Soft stop (SIGUSR1): the worker stops listening and finishes its requests; a
        master still there after 10 s gets SIGTERM."""
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            if self.running():
                os.kill(int(self.pid_file.read_text()), signum)
                wait_until(lambda: not self.running(), 10, 0.1)
        self.pid_file.unlink(missing_ok=True)
