"""The gateway's HAProxy process and its admin socket: whether it runs, which worker serves,
one Runtime API command, a soft stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from functools import cached_property
from pathlib import Path

from maas.errors import DeployError
from maas.net import wait_until
from maas.operate.gateway_socket import admin_socket, release

COMPLAINTS = ("problem", "can't", "Invalid", "invalid", "No such", "Unknown", "Require")


def haproxy() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise DeployError(
            "haproxy is not installed: the stable address is an HAProxy gateway "
            "(`make system`, or `apt-get install haproxy`)"
        )
    return path


class HAProxyAdmin:
    """The HAProxy master in `folder/gateway.pid`, on `folder/gateway.cfg`; its worker's
    admin socket (`maas.operate.gateway_socket`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config_file = folder / "gateway.cfg"
        self.pid_file = folder / "gateway.pid"

    @cached_property
    def socket_file(self) -> Path:
        return admin_socket(self.folder)

    def running(self) -> bool:
        """Our HAProxy master (the process in gateway.pid, on our configuration) is alive."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        # the pid file is ours; a gateway started by an older maas ran from a relative path
        return b"haproxy" in command and b"gateway.cfg" in command

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

    def _worker(self) -> str | None:
        """The serving worker's pid (the admin socket is the worker's), None if none answers."""
        try:
            found = re.search(r"^Pid: (\d+)", self.command("show info"), re.MULTILINE)
        except DeployError:
            return None
        return found[1] if found else None

    def stop(self) -> None:
        """Soft stop (SIGUSR1): the worker stops listening and finishes its requests; a
        master still there after 10 s gets SIGTERM."""
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            if self.running():
                os.kill(int(self.pid_file.read_text()), signum)
                wait_until(lambda: not self.running(), 10, 0.1)
        if self.running():
            return  # the master outlived SIGTERM: its pid file and socket stay
        self.pid_file.unlink(missing_ok=True)
        release(self.folder)
        self.__dict__.pop("socket_file", None)  # a start makes a new private folder
