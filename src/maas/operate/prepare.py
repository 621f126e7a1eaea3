"""Packaging ahead of a promotion: while the controller is idle, the newest versions that
passed the gate get their Bento and image built and infra-validated (`packaging.prepare_newest`),
so that moving `champion` to one of them later — `maas promote`, a person in the MLflow UI, a
progressive rollout — only starts the validated image and switches (docs/performance.md).

Nothing is trusted for it: `package_version` verifies the version's signed verdict before its
recorded serving code is downloaded or run, and writes its result as signed tags, which the
release later reuses only where the signature verifies (`maas.release.attestation`). A version
that cannot be packaged is logged and tried again only by the next controller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maas.config import Params
from maas.errors import LockBusy
from maas.operate.controller import controller_lock
from maas.tracking.registry import CHAMPION
from maas.tracking.verdict import SIGNATURE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LOOK_BACK = 50  # the newest versions looked at for candidates


@dataclass(frozen=True)
class Candidate:
    version: str
    tags: Mapping[str, str]
    aliases: tuple[str, ...] = ()


def candidates(versions: Iterable[Candidate], newest: int, tried: set[str]) -> list[str]:
    """The versions to package now: of the `newest` newest versions that passed the gate and
    whose data validation did not fail, those not packaged yet (no `infra_validation` tag), not
    champion (the release packages that one), not tried by this controller before, and whose
    registration is done: the verdict's signature is the last tag it sets, so a version seen
    between its creation and that tag (a registration on another host, mid-way) waits for a
    later pass instead of being tried, refused as unsigned, and never packaged ahead."""
    passed = [
        c
        for c in sorted(versions, key=lambda c: int(c.version), reverse=True)
        if c.tags.get("gate_passed") == "true" and c.tags.get("validation_status") != "failed"
    ][:newest]
    return [
        c.version
        for c in passed
        if "infra_validation" not in c.tags
        and CHAMPION not in c.aliases
        and c.version not in tried
        and SIGNATURE_TAG in c.tags
    ]


def registered(client: MlflowClient, model: str) -> list[Candidate]:
    """The model's newest LOOK_BACK versions with their tags and aliases."""
    found = client.search_model_versions(
        f"name='{model}'", max_results=LOOK_BACK, order_by=["version_number DESC"]
    )
    return [Candidate(str(v.version), dict(v.tags), tuple(v.aliases or ())) for v in found]


def prepare_once(params: Params, client: MlflowClient, tried: set[str]) -> list[str]:
    """Package the task's candidates (`candidates`), one at a time under the controller's lock
    (a pass that must release waits for at most one packaging; a busy lock skips this turn).
    Returns the versions packaged; each one tried goes into `tried`, whatever its outcome."""
    newest = params.packaging.prepare_newest
    if newest == 0:
        return []
    from maas.release.packaging import package_version

    model = params.registry.model_name
    done: list[str] = []
    for version in candidates(registered(client, model), newest, tried):
        try:
            with controller_lock(params.deploy.state_dir, wait=False):
                tried.add(version)
                result = package_version(
                    client,
                    params.registry,
                    params.packaging,
                    params.serving,
                    version,
                    verdict_key_file=params.promotion.verdict_key_file,
                )
        except LockBusy:
            return done
        except Exception as error:  # an untrusted or broken version: said, not retried
            log.warning("%s v%s: not packaged ahead of a promotion: %s", model, version, error)
            continue
        log.info(
            "%s v%s: packaged ahead of a promotion (infra-validation %s, %s)",
            model,
            version,
            result.infra_validation,
            ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()) or "all reused",
        )
        done.append(version)
    return done
