"""Issue 32 item 3: the Kubernetes work pool's base job template for `maas schedule --pool`'s
deployments, image and resources from params, rendered into the Job a Kubernetes worker makes
and checked against the Kubernetes schemas (prefect-kubernetes; no cluster here)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maas.cli import app
from maas.config import load_params
from maas.errors import DeployError
from maas.operate.kubernetes import checked
from maas.operate.kubernetes_pool import job_template, rendered_job
from tests.helpers import ROOT

SETS = [
    "schedule.kubernetes.image=registry.example.com/team/maas-pipeline:7",
    "schedule.kubernetes.memory_limit=6Gi",
    "schedule.kubernetes.cpu_request=1500m",
]


def test_the_job_takes_image_and_resources_from_params_and_is_valid_kubernetes() -> None:
    job = load_params(ROOT / "params.yaml", SETS).schedule.kubernetes
    manifest = checked([rendered_job(job_template(job))])[0]  # DeployError if not valid
    assert manifest["kind"] == "Job" and manifest["metadata"]["namespace"] == "maas"
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/team/maas-pipeline:7"
    assert container["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "6Gi"},
    }
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 86400
    assert (manifest["spec"]["completions"], manifest["spec"]["parallelism"]) == (1, 1)
    names = {variable["name"] for variable in container["env"]}
    assert "PREFECT__FLOW_RUN_ID" in names  # the worker's own per-run settings are rendered


def test_prefect_kubernetes_own_template_is_refused_where_it_is_wrong() -> None:
    """Why job_template moves two keys: prefect-kubernetes 0.8 puts the Job's completions and
    parallelism in the pod spec, which strict validation (as `kubectl apply`) refuses."""
    from prefect_kubernetes.worker import KubernetesWorker

    template = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    chosen = {"image": "x/y:1", "cpu_request": "1", "cpu_limit": "2"}
    chosen |= {"memory_request": "1Gi", "memory_limit": "2Gi"}
    for name, value in chosen.items():  # all else as in maas's own template
        template["variables"]["properties"][name]["default"] = value
    with pytest.raises(DeployError, match="completions"):
        checked([rendered_job(template)])


def test_maas_schedule_writes_the_template_for_prefect_work_pool_create(tmp_path: Path) -> None:
    target = tmp_path / "k8s-pool.json"
    sets = [arg for item in SETS for arg in ("--set", item)]
    result = CliRunner().invoke(
        app,
        ["schedule", "--kubernetes-template", str(target), "-p", str(ROOT / "params.yaml"), *sets],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps lines at its width
    assert "--type kubernetes --base-job-template" in said
    written = json.loads(target.read_text())
    job = load_params(ROOT / "params.yaml", SETS).schedule.kubernetes
    assert written == job_template(job)
