"""`maas run` starts Prefect's temporary server while the pipeline imports (maas.cli.prefect_boot):
the flow must then run against that same server, and nothing may start where a server is
configured. Each case runs in a fresh interpreter: Prefect keeps one temporary server per
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

PROBE = textwrap.dedent(
    """
    import json, httpx
    from maas.cli.common import setup_environment
    setup_environment()  # as every maas command does: the server's start-up timeout among it
    from maas.cli.prefect_boot import EarlyServer
    early = EarlyServer.start()
    import maas.flows.training  # what `maas run` imports meanwhile
    early.wait()
    from prefect.server.api.server import SubprocessASGIServer
    started = dict(SubprocessASGIServer._instances)
    server = started.get(None)
    healthy = server is not None and httpx.get(server.api_url + "/health").status_code == 200
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow
    def which_api() -> str:
        with get_client(sync_client=True) as client:
            return str(client.api_url)

    used = which_api() if server is not None else None
    print(json.dumps({"started": len(started), "healthy": healthy,
                      "server": server.api_url if server else None, "flow_api": used}))
    """
)


def _probe(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_flow_runs_on_the_server_started_while_it_imported(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "0"}
    found = _probe(env)
    assert found["started"] == 1 and found["healthy"] is True
    assert str(found["flow_api"]).rstrip("/") == str(found["server"]).rstrip("/")


def test_nothing_starts_where_a_server_is_configured(tmp_path):
    env = dict(os.environ) | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # configured (and down): not ours to start
    }
    found = _probe(env)
    assert found == {"started": 0, "healthy": False, "server": None, "flow_api": None}
