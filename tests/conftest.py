"""Session set-up (analytics off, a private BentoML store) and the shared parameter fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from maas.config import Params, load_params
from tests.helpers import ROOT

KEEP_IMAGES_S = 3 * 3600  # longer than a whole CI run
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# BentoML reads its home once, at import: every test uses a private model/bento store.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="maas-test-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


# `make test` runs two pytest-xdist workers with --dist loadgroup. The end-to-end modules are
# two groups, each kept on one worker in file order (they share session fixtures: one trained
# registry, one Prefect server); the unit and integration tests fill in around them.
E2E_GROUPS = {
    "test_packaging.py": "e2e-registry",  # packages the trained version ...
    "test_promotion.py": "e2e-registry",  # ... that the controller then deploys
    "test_identity.py": "e2e-registry",  # ... and beside another project's v1
    "test_concurrency.py": "e2e-registry",  # registers the same trained model (built once)
    "test_rollout.py": "e2e-registry",  # rolls out two more versions of it
    "test_tasks.py": "e2e-tasks",  # projects of their own: whichever worker is free
    "test_hotel_rates.py": "e2e-tasks",
    "test_monitoring.py": "e2e-tasks",  # (e2e-pipeline is the longest group)
    "test_corpus.py": "e2e-tasks",  # real public tables, each a project of its own
    "test_multi_host.py": "e2e-tasks",  # hosts of its own (network namespaces)
}
# Whole-project runs of minutes outside tests/e2e, scheduled with a group's modules
SLOW_GROUPS = {
    "test_bench_smoke.py": "e2e-tasks",  # benchmarks/run_all.py --smoke: a project of its own
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.fspath)
        if path.parent.name == "e2e":
            item.add_marker(pytest.mark.xdist_group(E2E_GROUPS.get(path.name, "e2e-pipeline")))
        elif path.name in SLOW_GROUPS:
            item.add_marker(pytest.mark.xdist_group(SLOW_GROUPS[path.name]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Serving images are named per version and run (`maas-delay-pkg:v1-<id>`), so each run
    builds new ones. Once all workers are done, each maas repository (label org.maas.bento)
    keeps its newest image (the next run's layer cache) and drops images older than
    KEEP_IMAGES_S: a test session running beside this one may still be using younger ones.
    Then what that left dangling goes."""
    runtime = shutil.which("podman")
    if runtime is None or hasattr(session.config, "workerinput"):  # an xdist worker
        return
    listed = subprocess.run(
        [runtime, "images", "--filter", "label=org.maas.bento", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    images = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
    by_repository: dict[str, list[tuple[int, str]]] = {}
    for image in images:
        for name in image.get("Names") or []:
            repository = name.rsplit(":", 1)[0]
            by_repository.setdefault(repository, []).append((int(image["Created"]), name))
    old = time.time() - KEEP_IMAGES_S
    stale = [
        name
        for tagged in by_repository.values()
        for created, name in sorted(tagged)[:-1]
        if created < old
    ]
    if stale:
        subprocess.run([runtime, "rmi", "--force", *stale], capture_output=True, timeout=300)
    subprocess.run(
        [runtime, "image", "prune", "--force", "--filter", "label=org.maas.bento"],
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def small_params() -> Params:
    """The repo's params with bands sized for a few hundred synthetic rows."""
    return load_params(
        ROOT / "params.yaml",
        [
            "validation.row_count.min=100",
            "validation.row_count.max=100000",
            "validation.label_rate.min=0.05",
            "validation.label_rate.max=0.95",
            "features.min_frequency=1",
            "train.max_epochs=3",
            "train.batch_size=64",
            "train.device=cpu",
        ],
    )
