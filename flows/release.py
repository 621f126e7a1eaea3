"""Release flow: a version → package (reusing its image) → deploy → tags back.

Wiring only: the controller (`maas watch`, or the reconcile flow) runs it when `champion`
points at a version that is not the one serving; every step is a function in `maas`.
"""

from __future__ import annotations

import json

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from maas.clock import timed
from maas.config import Params
from maas.operate.deployment import Deployment
from maas.operate.records import record_deployment
from maas.operate.targets import deploy_image, make_target
from maas.release.packaging import package_version
from maas.tracking.store import connect

package = task(name="package_version", cache_policy=NO_CACHE)(package_version)
deploy = task(name="deploy_version", cache_policy=NO_CACHE)(deploy_image)
record = task(name="record_deployment", cache_policy=NO_CACHE, retries=2)(record_deployment)


@flow(name="release", log_prints=True)
def release(version: str, params: Params) -> Deployment:
    """Package `version` (its validated image), run it on the deploy target, record it."""
    client = connect(params.registry)
    packaged = package(
        client=client,
        registry=params.registry,
        packaging=params.packaging,
        serving=params.serving,
        ref=version,
        verdict_key_file=params.promotion.verdict_key_file,
    )
    timings = dict(packaged.timings)
    image, image_id = packaged.validated_image()
    with timed(timings, "deploy"):
        deployment = deploy(
            target=make_target(params),
            model=params.registry.model_name,
            version=version,
            image=image,
            image_id=image_id,
        )
    print(f"release v{version} timings (s): {json.dumps(timings)}")
    record(
        client=client,
        model=params.registry.model_name,
        target=params.deploy.target,
        deployment=deployment,
    )
    create_markdown_artifact(
        f"**{params.registry.model_name} v{version}** serves at {deployment.endpoint}\n\n"
        f"image `{packaged.image}` ({packaged.image_id}), reused: {packaged.reused or 'nothing'}",
        key="release",
        description="what serves now",
    )
    return deployment
