"""What serves, written where people look: tags on the versions and on the registered model.

Exactly one version of a model says `deploy_status=deployed` (with its `endpoint`); the one it
replaced says `replaced` or `rolled_back`, when and by which version. The registered model's
tags (`serving_version`, `serving_endpoint`, `serving_since`) show on its page in the MLflow
UI, where a person who moved the `champion` alias looks for the result.

MLflow writes a version's tags one by one, so `deploy_status` is written last: whoever reads
`deployed` (a person, `maas status`, a test) also finds the `endpoint` and the times with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maas.clock import utc_timestamp
from maas.operate.deployment import Deployment
from maas.tracking.registry import delete_version_tags, set_version_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEPLOYED = "deployed"
STALE = ("deploy_reason", "deploy_attempted_at")  # of an earlier failure or refusal
SERVING_TAGS = ("serving_version", "serving_endpoint", "serving_since")  # on the model


def record_deployment(
    client: MlflowClient, model: str, target: str, deployment: Deployment
) -> None:
    """Tags back on the version (what serves it, where, since when) and on the model."""
    version = deployment.version
    set_version_tags(
        client,
        model,
        version,
        {
            "endpoint": deployment.endpoint,
            "deployed_at": deployment.deployed_at,
            "deploy_target": target,
        },
    )
    tags = client.get_model_version(model, version).tags
    delete_version_tags(client, model, version, STALE, tags)
    serving = (version, deployment.endpoint, deployment.deployed_at)
    for key, value in zip(SERVING_TAGS, serving, strict=True):
        client.set_registered_model_tag(model, key, value)
    set_version_tags(client, model, version, {"deploy_status": DEPLOYED})  # last: see above


def record_replaced(
    client: MlflowClient, model: str, version: str, left_as: str = "replaced"
) -> list[str]:
    """Every other version that still says it is deployed now says `left_as` (`replaced`, or
    `rolled_back` when the champion went back to an earlier version), when and by which
    version, and loses its `endpoint`. Returns those versions."""
    others = [
        found
        for found in client.search_model_versions(f"name = '{model}'")
        if str(found.version) != str(version) and found.tags.get("deploy_status") == DEPLOYED
    ]
    for other in others:
        set_version_tags(
            client,
            model,
            other.version,
            {
                "replaced_at": utc_timestamp(),
                "replaced_by": str(version),
            },
        )
        delete_version_tags(client, model, other.version, ("endpoint",), other.tags)
        set_version_tags(client, model, other.version, {"deploy_status": left_as})
    return [str(other.version) for other in others]


def record_undeployed(client: MlflowClient, model: str, version: str) -> None:
    """`version` no longer serves and nothing replaced it: it says `undeployed` and when, and
    the registered model no longer names a serving version."""
    set_version_tags(client, model, version, {"undeployed_at": utc_timestamp()})
    tags = client.get_model_version(model, version).tags
    delete_version_tags(client, model, version, ("endpoint",), tags)
    model_tags = client.get_registered_model(model).tags
    for key in SERVING_TAGS:
        if key in model_tags:
            client.delete_registered_model_tag(model, key)
    set_version_tags(client, model, version, {"deploy_status": "undeployed"})
