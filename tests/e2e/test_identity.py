"""Names that leave a project are its own: two projects on one machine, each with its own v1 of
the same registered model, package and serve side by side (BentoML's store and the image
store are machine-wide; version numbers are not)."""

from __future__ import annotations

import httpx
import pytest

from maas.net import free_port
from maas.release import containers
from maas.release.containers import wait_ready
from maas.release.packaging import package_version
from maas.tracking.registry import get_version, version_digests
from maas.tracking.store import connect
from tests.e2e.helpers import (
    PARAMS,
    TRAINED_MODEL,
    container_runtime_or_skip,
    copy_months,
    overrides_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def other_project(tmp_path_factory, real_months, prefect_api, trained_project):
    """Another checkout (or this one after `.maas/` was deleted and the pipeline run again):
    the same registered model name, its own registry, its own v1 (a one-epoch model; the same
    months, so the validation outcomes the trained project cached are reused)."""
    from maas.flows.training import training

    from maas.config import load_params

    root = tmp_path_factory.mktemp("other-project")
    raw = copy_months(real_months, root / "raw")
    overrides = [
        *overrides_for(root, raw),
        f"registry.model_name={TRAINED_MODEL}",
        "train.max_epochs=1",
        "train.seed=7",
        f"validation.cache_dir={trained_project[0] / 'validation-cache'}",
    ]
    training(params_file=PARAMS, overrides=overrides)
    return load_params(PARAMS, overrides)


def test_two_projects_package_and_serve_their_own_v1_at_once(trained_project, other_project):
    runtime = container_runtime_or_skip()
    projects = [trained_project[2], other_project]
    results, runs, digests = [], [], []
    for params in projects:  # the second used to stop on "model.onnx sha256 ... does not match"
        client = connect(params.registry)
        results.append(
            package_version(
                client,
                params.registry,
                params.packaging,
                params.serving,
                "1",
                verdict_key_file=params.promotion.verdict_key_file,
            )
        )
        version = get_version(client, params.registry.model_name, "1")
        runs.append(version.run_id)
        digests.append(version_digests(version))
    mine, theirs = results
    assert digests[0] != digests[1] and runs[0] != runs[1]  # two different models called v1
    assert mine.infra_validation == theirs.infra_validation == "passed"
    assert mine.bento_tag != theirs.bento_tag and mine.image != theirs.image
    assert mine.image_id != theirs.image_id
    started = []
    try:
        for result in results:
            port = free_port()
            name = containers.run_container(
                runtime, result.validated_image()[1], f"maas-e2e-identity-{port}", port
            )
            started.append(name)
            assert wait_ready(f"http://127.0.0.1:{port}", 120), containers.container_logs(
                runtime, name
            )
            served = httpx.post(f"http://127.0.0.1:{port}/metadata", json={}, timeout=10).json()
            index = len(started) - 1
            assert served["model_version"] == "1" and served["run_id"] == runs[index]
            assert served["sha256"] == digests[index]
    finally:
        for name in started:
            containers.remove_container(runtime, name)
