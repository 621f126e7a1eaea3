"""The stable address: HAProxy (Debian's package) in front of whichever container serves.

Chosen by measurement (docs/performance.md#choosing-the-gateway-issue-13): a version switch
goes through HAProxy's Runtime API on its admin socket, so nothing reloads and no client
connection is closed. The backend has two server slots, blue and green: the new version's
address goes into the spare slot, which is made ready, and the live one is put in maintenance
(its requests in flight finish; changing the live slot's address instead would leave HAProxy
reusing its idle connections to the old container); HAProxy retries a request whose upstream
connection failed before any response byte. The configuration file is rendered from the deploy
state, checked with `haproxy -c` before it is used (an invalid one is refused and the running
one stays) and rewritten at each switch, so a restarted gateway serves what the state says.
HAProxy runs in master-worker mode in its own session: a controller restart never interrupts
serving, and the controller starts it again when it is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from maas.net import port_open, wait_until
from maas.operate.deployment import DeployError

BACKEND = "model"
SLOTS = ("blue", "green")  # a fresh gateway serves from blue
NO_SERVER_PORT = 1  # a slot with no version: disabled; with both disabled HAProxy answers 503


def haproxy() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise DeployError(
            "haproxy is not installed: the stable address is an HAProxy gateway "
            "(`make system`, or `apt-get install haproxy`)"
        )
    return path


class Gateway:
    """HAProxy on `host:port`, its files in `folder` (gateway.cfg, .sock, .pid, .log)."""

    def __init__(self, folder: Path, host: str, port: int) -> None:
        self.folder, self.host, self.port = folder, host, port
        self.config_file = folder / "gateway.cfg"
        self.socket_file = folder / "gateway.sock"
        if len(str(self.socket_file.resolve())) > 100:  # a Unix socket path holds 107 bytes
            digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
            self.socket_file = Path(tempfile.gettempdir()) / f"maas-gateway-{digest}.sock"
        self.pid_file = folder / "gateway.pid"
        self.log_file = folder / "gateway.log"
        self.slot_file = folder / "gateway.slot"  # the running process's live slot
        self.model: str | None = None  # served at /models/<model>/... as well as at /

    def render(self, upstream: int | None) -> str:
        live = (
            f"127.0.0.1:{upstream}"
            if upstream is not None
            else f"127.0.0.1:{NO_SERVER_PORT} disabled"
        )
        server = f"  server blue {live}\n  server green 127.0.0.1:{NO_SERVER_PORT} disabled"
        return f"""# rendered by maas (maas.operate.gateway) from {self.folder / "local.json"}
global
  master-worker
  stats socket {self.socket_file} mode 600 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  option http-keep-alive
  retries 1
  retry-on conn-failure empty-response
frontend maas
  bind {self.host}:{self.port}
{self.routes()}  default_backend {BACKEND}
backend {BACKEND}
{server}
"""

    def routes(self) -> str:
        """`/models/<model>/<path>` reaches the model's `/<path>`; another model's name gets a
        404 naming the one served here."""
        if self.model is None or not re.fullmatch(r"[A-Za-z0-9._-]+", self.model):
            return ""
        prefix = f"/models/{self.model}/"
        unknown = json.dumps({"error": "no such model here", "models": [self.model]})
        return (
            f"  acl this_model path_beg {prefix}\n"
            "  acl any_model path_beg /models/\n"
            f"  http-request return status 404 content-type application/json string '{unknown}'"
            " if any_model !this_model\n"
            f"  http-request set-path %[path,regsub(^{re.escape(prefix)},/)] if this_model\n"
        )

    def checked_config(self, upstream: int | None) -> Path:
        """The configuration for `upstream`, written beside the live one and checked with
        `haproxy -c`; put it in place with `os.replace` (a refused one never is)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        candidate = self.config_file.with_suffix(".cfg.new")
        candidate.write_text(self.render(upstream))
        checked = subprocess.run([haproxy(), "-c", "-q", "-f", str(candidate)],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        if checked.returncode != 0:
            candidate.unlink(missing_ok=True)
            raise DeployError(f"haproxy -c refused the gateway configuration: "
                              f"{(checked.stderr or checked.stdout).strip()[-500:]}")  # fmt: skip
        return candidate

    def running(self) -> bool:
        """Our HAProxy master (the process in gateway.pid, on our configuration) is alive."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        return b"haproxy" in command and str(self.config_file).encode() in command

    def ensure(self, upstream: int | None) -> None:
        """Start the gateway unless it runs; refuse an address another process holds (a dev
        server, another project's gateway): it would answer for us."""
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
        os.replace(self.checked_config(upstream), self.config_file)
        self.socket_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [haproxy(), "-W", "-db", "-f", str(self.config_file)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(str(process.pid))
        self.slot_file.write_text(SLOTS[0])
        if not wait_until(lambda: port_open(self.host, self.port), 15, 0.1):
            raise DeployError(
                f"the gateway did not open {self.host}:{self.port} (see {self.log_file}; "
                "is the port taken?)"
            )

    def command(self, line: str) -> str:
        """One Runtime API command on the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.socket_file))
            sock.sendall(line.encode() + b"\n")
            return b"".join(iter(lambda: sock.recv(4096), b"")).decode().strip()

    def switch(self, upstream: int) -> None:
        """New requests go to 127.0.0.1:`upstream` from now on; requests already on the old
        server finish there. No reload: the running process swaps its server slots."""
        config = self.checked_config(upstream)
        live = self.slot_file.read_text().strip() if self.slot_file.is_file() else SLOTS[0]
        spare = SLOTS[1] if live == SLOTS[0] else SLOTS[0]
        try:
            answer = self.command(f"set server {BACKEND}/{spare} addr 127.0.0.1 port {upstream}")
            if "changed" not in answer and "no need to change" not in answer:
                raise DeployError(f"the gateway refused the new address: {answer}")
            for line in (f"set server {BACKEND}/{spare} state ready",
                         f"set server {BACKEND}/{live} state maint"):  # fmt: skip
                if answer := self.command(line):
                    raise DeployError(f"the gateway refused `{line}`: {answer}")
        except (OSError, DeployError) as error:
            config.unlink(missing_ok=True)
            if isinstance(error, DeployError):
                raise
            raise DeployError(f"the gateway's admin socket {self.socket_file}: {error}") from None
        self.slot_file.write_text(spare)
        os.replace(config, self.config_file)  # a restarted gateway serves the same, from blue

    def stop(self) -> None:
        if self.running():
            os.kill(int(self.pid_file.read_text()), signal.SIGTERM)  # workers finish, then exit
            wait_until(lambda: not self.running(), 10, 0.1)
        self.pid_file.unlink(missing_ok=True)
