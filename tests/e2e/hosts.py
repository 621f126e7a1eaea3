"""Hosts of the test's own on one machine, for tests/e2e/test_multi_host.py.

Each host is a network namespace (`ip netns`) joined by a veth pair to one bridge the test
makes, with an address in 10.78.0.0/24; the bridge holds 10.78.0.1, the root namespace's
address on that network. Each host also has a folder of its own, bind-mounted (inside the
namespace's own mount namespace, which `ip netns exec` makes) over one common path: every
host's processes see *their* folder at `Hosts.local`, so no two hosts share a file through it,
while the settings naming that path are the same everywhere (as on real hosts).

Traffic goes only to addresses on that bridge (STACK.md, "Network namespaces"); the
namespaces, veths and bridge are deleted by `close()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.helpers import Process
from tests.helpers import missing

NETWORK = "10.78.0"  # /24; .1 is the bridge (the root namespace)


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


@dataclass
class Hosts:
    """The namespaces made so far, by host name, and the folders they see at `local`."""

    root: Path
    tag: str = field(default_factory=lambda: f"mh{os.getpid() % 100000}")
    addresses: dict[str, str] = field(default_factory=dict)
    bridge: str = ""

    @property
    def local(self) -> Path:
        """The common path where each host sees its own folder."""
        return self.root / "local"

    def folder(self, host: str) -> Path:
        """`host`'s own folder, as the test (outside every host) sees it."""
        return self.root / "hosts" / host

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def start(self) -> None:
        """The bridge at 10.78.0.1: a host of the root namespace's on the test's network."""
        if os.geteuid() != 0 or not shutil.which("ip"):
            missing("netns", "network namespaces need root and iproute2 (`ip netns`)")
        self.local.mkdir(parents=True, exist_ok=True)
        self.bridge = f"{self.tag}-br"[:15]
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        except RuntimeError as error:
            missing("netns", f"`ip link add ... type bridge` is not permitted here ({error})")
        run(["ip", "addr", "add", f"{NETWORK}.1/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    def add(self, host: str) -> str:
        """A namespace for `host` with the next address on the bridge; returns the address."""
        address = f"{NETWORK}.{len(self.addresses) + 2}"
        name = self.namespace(host)
        outside, inside = f"{self.tag}{len(self.addresses)}h"[:15], f"{self.tag}-in"
        try:
            run(["ip", "netns", "add", name])
        except RuntimeError as error:
            missing("netns", f"`ip netns add` is not permitted here ({error})")
        self.addresses[host] = address
        for step in (
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", inside, "netns", name],
            ["ip", "link", "set", outside, "master", self.bridge],
            ["ip", "link", "set", outside, "up"],
            ["ip", "-n", name, "addr", "add", f"{address}/24", "dev", inside],
            ["ip", "-n", name, "link", "set", inside, "up"],
            ["ip", "-n", name, "link", "set", "lo", "up"],
        ):
            run(step)
        self.folder(host).mkdir(parents=True, exist_ok=True)
        return address

    def command(self, host: str, command: list[str]) -> list[str]:
        """`command` run on `host`: in its namespace, its folder mounted at `local`. The
        root namespace's host ("edge") runs commands as they are, with its folder by path."""
        if host not in self.addresses:
            return command
        mount = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return [
            "ip",
            "netns",
            "exec",
            self.namespace(host),
            "sh",
            "-c",
            mount,
            "sh",
            str(self.folder(host)),
            str(self.local),
            *command,
        ]

    def process(self, host: str, name: str, command: list[str], env: dict[str, str]) -> Process:
        """`command` as a long-running process on `host`, logging to `root`/`name`.log."""
        return Process(self.root, [], name, env=env, command=self.command(host, command))

    def check(self, host: str, command: list[str], env: dict[str, str], timeout: float = 300):
        """`command` on `host`, to its end: the finished process (a failure raises)."""
        done = subprocess.run(
            self.command(host, command), env=env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{host}: {command[:4]}…\n{done.stdout}\n{done.stderr}"
        return done

    def close(self) -> None:
        """Every namespace, veth and the bridge, gone (deleting a namespace deletes its
        end of a veth, and with it the other end)."""
        for host in self.addresses:
            subprocess.run(["ip", "netns", "del", self.namespace(host)], capture_output=True)
        if self.bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
