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

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from maas.net import port_open, wait_until
from maas.operate.deployment import DeployError
from maas.operate.gateway_routes import (
    MODEL_NAME,
    POOL,
    SLOTS,
    MapFiles,
    Route,
    RouteTable,
    render,
    servers,
)


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
        checked = subprocess.run([haproxy(), "-c", "-f", str(candidate)],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        if checked.returncode != 0:
            candidate.unlink(missing_ok=True)
            said = checked.stderr + checked.stdout
            alerts = [line for line in said.splitlines() if "ALERT" in line] or [said]
            raise DeployError(f"haproxy -c refused the gateway configuration: "
                              f"{' '.join(alerts).strip()[-500:]}")  # fmt: skip
        return candidate

    def running(self) -> bool:
        """Our HAProxy master (the process in gateway.pid, on our configuration) is alive."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        return b"haproxy" in command and str(self.config_file).encode() in command

    def ensure(self) -> None:
        """Start the gateway unless it runs, serving what the routing table says; refuse an
        address another process holds (a dev server, another project's gateway): it would
        answer for us."""
        if self.running() and port_open(self.host, self.port):
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
        for route in table.routes.values():
            route.live = SLOTS[0]  # the configuration puts each live version in blue
        table.pool = max(table.pool, POOL * (len(table.routes) // POOL + 1))
        os.replace(self.checked_config(table), self.config_file)
        table.write(self.table_file)
        self.socket_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [haproxy(), "-W", "-db", "-f", str(self.config_file)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
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
        answer = self.command(line)
        if answer and not any(word in answer for word in accepted):
            raise DeployError(f"the gateway refused `{line[:120]}`: {answer[:300]}")
        return answer

    def _apply(self, table: RouteTable) -> None:
        """Every map as `table` says, each replaced atomically (prepare, add, commit), then
        the table recorded: a restarted gateway serves the same."""
        for path, entries in self.maps.write(table).items():
            answer = self._expect(f"prepare map {path}", "New version created")
            version = re.search(r"created: (\d+)", answer)
            if version is None:
                raise DeployError(f"the gateway did not prepare {path}: {answer}")
            for key, value in entries.items():  # one entry per command: a value may be long
                self._expect(f"add map @{version[1]} {path} <<\n{key} {value}\n")
            self._expect(f"commit map @{version[1]} {path}")
        table.write(self.table_file)

    def switch(self, model: str, upstreams: list[int], version: str) -> None:
        """New requests for `model` go to 127.0.0.1:`upstreams` (the replicas where `version`
        runs, balanced) from now on; requests already on the old servers finish there. No
        reload: the running process swaps the model's server slots, and a new model takes a
        free backend."""
        if not re.fullmatch(MODEL_NAME, model):
            raise DeployError(f"model name {model!r} cannot be a gateway route")
        if not upstreams:
            raise DeployError(f"{model}: no replica to switch to")
        table = self.table()
        if table.backend_for(model) is None or len(upstreams) > table.replicas:
            # the pool is full, or more replicas than slots hold: a bigger configuration,
            # started afresh (the only changes that restart the gateway)
            table.pool += POOL if table.backend_for(model) is None else 0
            table.replicas = max(table.replicas, len(upstreams))
            table.write(self.table_file)
            self.stop()
            self.ensure()
            table = self.table()
        route = table.routes.get(model) or Route(str(table.backend_for(model)))
        live = route.live if route.ports else SLOTS[1]
        spare = SLOTS[1] if live == SLOTS[0] else SLOTS[0]
        self.checked_config(table)  # the maps and configuration as they stand still check
        for index, server in enumerate(servers(spare, table.replicas)):
            target = f"{route.backend}/{server}"
            if index >= len(upstreams):
                self._expect(f"set server {target} state maint")
                continue
            self._expect(f"set server {target} addr 127.0.0.1 port {upstreams[index]}",
                         "changed", "no need to change")  # fmt: skip
            self._expect(f"set server {target} state ready")
        table.routes[model] = Route(route.backend, list(upstreams), version, spare)
        self._apply(table)  # the model is routed, and its new version reachable by number
        if route.ports:
            for server in servers(live, table.replicas):
                self._expect(f"set server {route.backend}/{server} state maint")

    def remove(self, model: str) -> None:
        """`model` leaves the gateway: its paths answer 404, its slots are emptied."""
        table = self.table()
        route = table.routes.pop(model, None)
        table.catalog.pop(model, None)
        if route is None or not self.running():
            table.write(self.table_file)
            return
        self._apply(table)
        for slot in SLOTS:
            for server in servers(slot, table.replicas):
                self._expect(f"set server {route.backend}/{server} state maint")

    def publish(self, catalog: dict[str, dict[str, Any]]) -> None:
        """What `GET /models` answers from now on (an entry per model)."""
        table = self.table()
        table.catalog = catalog
        if self.running():
            self._apply(table)
        else:
            table.write(self.table_file)

    def stop(self) -> None:
        if self.running():
            os.kill(int(self.pid_file.read_text()), signal.SIGTERM)  # workers finish, then exit
            wait_until(lambda: not self.running(), 10, 0.1)
        self.pid_file.unlink(missing_ok=True)
