"""The gateways benchmarks/gateway.py compares, each run the way its documentation says to run
and reload it, with one worker process or thread each (the forwarder is one asyncio process;
on 2 cores wrk and the service need the rest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from maas.net import free_port, port_open, wait_until
from maas.operate.deployment import Deployment, write_state
from maas.operate.gateway_routes import slot_backend


class Gateway:
    """A reverse proxy on 127.0.0.1:`listen` in front of 127.0.0.1:`upstream`."""

    def __init__(self, folder: Path, listen: int, upstream: int) -> None:
        self.folder, self.listen = folder, listen
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{listen}/predict"
        self.process = self.start(upstream)
        if not wait_until(lambda: port_open("127.0.0.1", listen), 30, 0.1):
            raise RuntimeError(f"{type(self).__name__} did not open {listen}; see {folder}")

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def switch(self, upstream: int) -> None:
        """Validate the configuration for `upstream`, then apply it without a restart."""
        raise NotImplementedError

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        """Whether the proxy's validator accepts a 90/10 split and mirroring to `ports[1]`."""
        raise NotImplementedError

    def run(self, *command: str, check: bool = True, **env: str) -> bool:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.folder, env={**os.environ, **env}
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()[-500:]}")
        return done.returncode == 0

    def spawn(self, *command: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.folder / "gateway.log").open("ab")
        return subprocess.Popen(
            command, stdout=log, stderr=log, cwd=self.folder, env={**os.environ, **env}
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Nginx(Gateway):
    def config(self, upstreams: str, extra: str = "") -> Path:
        path = self.folder / "nginx.conf"
        folder = self.folder
        path.write_text(f"""daemon off;
master_process on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
  upstream model {{ {upstreams} keepalive 64; }}
  server {{
    listen 127.0.0.1:{self.listen};
    location / {{
      proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection "";
      {extra}
    }}
    location = /mirror {{ internal; proxy_pass http://model$request_uri; }}
  }}
}}
""")
        return path

    def command(self, *args: str) -> list[str]:
        return ["nginx", "-p", str(self.folder), "-e", str(self.folder / "error.log"), *args]

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        conf = self.config(f"server 127.0.0.1:{upstream};")
        self.run(*self.command("-t", "-c", str(conf)))
        return self.spawn(*self.command("-c", str(conf)))

    def switch(self, upstream: int) -> None:
        conf = self.config(f"server 127.0.0.1:{upstream};")
        self.run(*self.command("-t", "-c", str(conf)))  # an invalid one is never applied
        self.process.send_signal(signal.SIGHUP)  # graceful: new workers, old ones finish

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        split = f"server 127.0.0.1:{ports[0]} weight=9; server 127.0.0.1:{ports[1]} weight=1;"
        weighted = self.run(*self.command("-t", "-c", str(self.config(split))), check=False)
        mirrored = self.run(
            *self.command(
                "-t",
                "-c",
                str(
                    self.config(
                        f"server 127.0.0.1:{ports[0]};", "mirror /mirror; mirror_request_body on;"
                    )
                ),
            ),
            check=False,
        )
        self.config(f"server 127.0.0.1:{ports[0]};")
        return {"weighted_split": weighted, "mirroring": mirrored}


class HAProxy(Gateway):
    def config(self, servers: str) -> Path:
        path = self.folder / "haproxy.cfg"
        path.write_text(f"""global
  master-worker
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend gateway
  bind 127.0.0.1:{self.listen}
  default_backend model
backend model
{servers}
""")
        return path

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        conf = self.config(f"  server s1 127.0.0.1:{upstream}")
        self.run("haproxy", "-c", "-f", str(conf))
        return self.spawn("haproxy", "-W", "-db", "-f", str(conf))

    def switch(self, upstream: int) -> None:
        conf = self.config(f"  server s1 127.0.0.1:{upstream}")
        self.run("haproxy", "-c", "-f", str(conf))
        self.process.send_signal(signal.SIGUSR2)  # master-worker reload: old worker drains

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        split = (
            f"  server s1 127.0.0.1:{ports[0]} weight 90\n"
            f"  server s2 127.0.0.1:{ports[1]} weight 10"
        )
        weighted = self.run("haproxy", "-c", "-f", str(self.config(split)), check=False)
        self.config(f"  server s1 127.0.0.1:{ports[0]}")
        # HAProxy has no mirroring directive; it takes an external SPOE agent (spoa-mirror)
        return {"weighted_split": weighted, "mirroring": "external agent only"}


class MaasGateway(Gateway):
    """maas's own gateway (`maas.operate.gateway`): HAProxy switched through its Runtime API,
    blue/green server slots, no reload."""

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        from maas.operate.gateway import Gateway as HAProxyGateway

        self.haproxy = HAProxyGateway(self.folder, "127.0.0.1", self.listen, default="bench")
        self.haproxy.ensure()
        self.haproxy.switch("bench", [upstream], str(upstream))
        return subprocess.Popen(["sleep", "infinity"])  # HAProxy runs in its own session

    def switch(self, upstream: int) -> None:
        self.haproxy.switch("bench", [upstream], str(upstream))

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        return {"weighted_split": "set weight (Runtime API)", "mirroring": "external agent only"}

    def served(self) -> dict[str, int]:
        """Requests each server slot answered (HAProxy's `show stat`): proof that the traffic
        really moved at each switch, not only the configuration."""
        lines = self.haproxy.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        backend = self.haproxy.table().routes["bench"].backend  # its slots: b0-blue, b0-green
        totals = {r["pxname"]: int(r["stot"]) for r in rows if r["svname"] == "BACKEND"}
        return {slot: totals.get(slot_backend(backend, slot), 0) for slot in ("blue", "green")}

    def stop(self) -> None:
        self.haproxy.stop()
        super().stop()


class Caddy(Gateway):
    def config(self, proxy: str) -> Path:
        path = self.folder / "Caddyfile"
        path.write_text(f"""{{
  admin 127.0.0.1:{self.admin}
  auto_https off
}}
http://127.0.0.1:{self.listen} {{
  {proxy}
}}
""")
        return path

    def caddy(self, *args: str, check: bool = True) -> bool:
        home = str(self.folder)  # Caddy's data and autosaved config stay in the folder
        return self.run("caddy", *args, check=check, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home)

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        self.admin = free_port()
        conf = self.config(f"reverse_proxy 127.0.0.1:{upstream}")
        self.caddy("validate", "--config", str(conf), "--adapter", "caddyfile")
        return self.spawn(
            "caddy",
            "run",
            "--config",
            str(conf),
            "--adapter",
            "caddyfile",
            GOMAXPROCS="1",
            XDG_DATA_HOME=str(self.folder),
            XDG_CONFIG_HOME=str(self.folder),
        )

    def switch(self, upstream: int) -> None:
        conf = self.config(f"reverse_proxy 127.0.0.1:{upstream}")
        self.caddy("validate", "--config", str(conf), "--adapter", "caddyfile")
        self.caddy(
            "reload",
            "--config",
            str(conf),
            "--adapter",
            "caddyfile",
            "--address",
            f"127.0.0.1:{self.admin}",
        )

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        split = (
            f"reverse_proxy 127.0.0.1:{ports[0]} 127.0.0.1:{ports[1]} "
            "{\n    lb_policy weighted_round_robin 9 1\n  }"
        )
        weighted = self.caddy(
            "validate", "--config", str(self.config(split)), "--adapter", "caddyfile", check=False
        )
        self.config(f"reverse_proxy 127.0.0.1:{ports[0]}")
        return {"weighted_split": weighted, "mirroring": "no directive"}


class Forwarder(Gateway):
    """The stable address before the gateway (benchmarks/forwarder_baseline.py): the state
    file names the backend."""

    def state(self, upstream: int) -> Path:
        path = self.folder / "local.json"
        write_state(
            path,
            Deployment(
                model="bench",
                version=str(upstream),
                image="bench",
                container="bench",
                port=upstream,
                endpoint=self.url,
                deployed_at="0",
            ),
        )
        return path

    def start(self, upstream: int) -> subprocess.Popen[bytes]:
        state = self.state(upstream)
        baseline = Path(__file__).with_name("forwarder_baseline.py")
        return self.spawn(
            sys.executable,
            str(baseline),
            "--listen",
            f"127.0.0.1:{self.listen}",
            "--state",
            str(state),
        )

    def switch(self, upstream: int) -> None:
        self.state(upstream)

    def features(self, ports: tuple[int, int]) -> dict[str, bool | str]:
        return {"weighted_split": False, "mirroring": False}


GATEWAYS: dict[str, Callable[[Path, int, int], Gateway]] = {
    "maas_forwarder": Forwarder,
    "nginx": Nginx,
    "haproxy": HAProxy,
    "maas_gateway": MaasGateway,
    "caddy": Caddy,
}
