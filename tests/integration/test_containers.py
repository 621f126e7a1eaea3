"""Container clean-up on failure paths, with the real container tool (podman here)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from maas.release import containers
from maas.release.infra_validation import infra_validate
from maas.serving.request import FieldSpec, RequestSpec
from tests.e2e.helpers import container_runtime_or_skip

pytestmark = pytest.mark.integration
os.environ.setdefault("CONTAINERS_CONF", str(Path(__file__).parents[1] / "e2e/containers.conf"))
BROKEN = "localhost/maas-test-broken:1"


@pytest.fixture(scope="module")
def broken_image(tmp_path_factory) -> str:
    """An image whose user does not exist: `podman run` creates the container, then fails
    (exit 126), leaving it in state Created."""
    runtime = container_runtime_or_skip()
    empty = tmp_path_factory.mktemp("broken") / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    changes = ["--change", "USER nosuchuser", "--change", 'ENTRYPOINT ["/x"]']
    subprocess.run(
        [runtime, "import", *changes, str(empty), BROKEN], check=True, capture_output=True
    )
    yield runtime
    subprocess.run([runtime, "rmi", "--force", BROKEN], capture_output=True)


def test_an_image_that_cannot_start_fails_validation_and_leaves_no_container(
    broken_image, params
) -> None:
    runtime = broken_image
    request = RequestSpec("records", (FieldSpec("x", "float"),), outputs={"probability": "p"})
    report = infra_validate(runtime, BROKEN, "1", [], [], params.packaging, params.serving, request)
    assert not report.passed and "did not start" in report.reason
    assert containers.list_containers(runtime, "maas-validate-maas-test-broken") == []
