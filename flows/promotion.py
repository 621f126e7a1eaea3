"""Promotion flow: a version → package (reusing its image) → deploy → tags back.

Wiring only: the controller (`maas watch`, or the `reconcile` flow that `maas schedule` runs
on an interval) runs it when `champion` points at a version that is not the one serving;
every step is a function in `maas`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from maas.config import load_params
from maas.controller import deploy_version, make_target, reconcile_once, record_deployment
from maas.deploy import DeployError, Deployment
from maas.packaging import package_version
from maas.registry import connect

package = task(name="package_version", cache_policy=NO_CACHE)(package_version)
record = task(name="record_deployment", cache_policy=NO_CACHE, retries=2)(record_deployment)


deploy = task(name="deploy_version", cache_policy=NO_CACHE)(deploy_version)


@flow(name="promotion", log_prints=True)
def promotion(
    version: str, params_file: str = "params.yaml", overrides: list[str] | None = None
) -> Deployment:
    params = load_params(params_file, overrides or [])
    client = connect(params.registry)
    packaged = package(client, params.registry, params.packaging, params.serving, version)
    if packaged.image is None or packaged.infra_validation != "passed":
        raise DeployError(f"v{version} has no validated image: {packaged.infra_validation}")
    started = time.perf_counter()
    deployment = deploy(params, version, packaged.image)
    timings = {**packaged.timings, "deploy": round(time.perf_counter() - started, 2)}
    print(f"promotion v{version} timings (s): {json.dumps(timings)}")
    record(params, client, deployment)
    create_markdown_artifact(
        f"**{params.registry.model_name} v{version}** serves at {deployment.endpoint}\n\n"
        f"image `{packaged.image}` ({packaged.image_id}), reused: {packaged.reused or 'nothing'}",
        key="promotion",
        description="what serves now",
    )
    return deployment


@flow(name="reconcile", log_prints=True)
def reconcile(params_file: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """One controller pass as a flow run (`maas schedule` runs it on an interval): champion
    differs from what serves → the promotion flow as a subflow."""
    params = load_params(params_file, overrides or [])

    def promote(version: str) -> Deployment:
        return promotion(version=version, params_file=params_file, overrides=overrides)

    # wait=False: while another pass converges (a long build), this run ends as `busy`
    # instead of queueing behind it; the next scheduled run looks again.
    target = make_target(params)
    outcome = reconcile_once(params, connect(params.registry), target, promote, wait=False)
    print(f"reconcile: {outcome.action} v{outcome.version} {outcome.detail}")
    return asdict(outcome)
