"""Reconcile flow: one controller pass as a flow run (`maas schedule` runs it on an interval).

Wiring only: when `champion` differs from what serves, the controller runs the release flow as
a subflow; the decision is `maas.operate.controller`'s.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from maas.flows.release import release
from prefect import flow

from maas.config.scheduled import load_run_params
from maas.operate.controller import reconcile_once
from maas.operate.deployment import Deployment
from maas.operate.targets import make_target
from maas.tracking.store import connect


@flow(name="reconcile", log_prints=True)
def reconcile(
    params_file: str = "params.yaml", overrides: list[str] | None = None, task: str | None = None
) -> dict[str, Any]:
    params = load_run_params(params_file, overrides, task)  # a scheduled run: the owner's

    def release_version(version: str) -> Deployment:
        return release(version=version, params=params)

    # wait=False: while another pass converges (a long build), this run ends as `busy`
    # instead of queueing behind it; the next scheduled run looks again.
    outcome = reconcile_once(
        params, connect(params.registry), make_target(params), release_version, wait=False
    )
    print(f"reconcile: {outcome.action} v{outcome.version} {outcome.detail}")
    return asdict(outcome)
