"""The base job template of a Kubernetes work pool for `maas schedule --pool`'s deployments.

A Kubernetes worker (`prefect worker start --type kubernetes`, package prefect-kubernetes)
runs each flow run as a Job made from its pool's base job template. This module writes that
template with the image (maas and the project installed) and resources from
`schedule.kubernetes`, after rendering the Job it makes for a run and checking it against the
Kubernetes schemas (maas.operate.kubernetes.checked). Nothing runs here: there is no cluster.

prefect-kubernetes 0.8's own template puts the Job's `completions` and `parallelism` in the
pod spec, where Kubernetes has no such fields (`kubectl apply --validate=strict` refuses them):
they move to the Job's spec.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from uuid import uuid4

from maas.config.sections import PoolJobParams
from maas.files import write_text_atomic
from maas.operate.kubernetes import checked

RUN_NAME = "nightly-run"  # the flow run a rendered Job is made for


def job_template(job: PoolJobParams) -> dict[str, Any]:
    """prefect-kubernetes' base job template with `job`'s image, namespace and resources as
    its variables' defaults (a deployment may still set them per run)."""
    from prefect_kubernetes.worker import KubernetesWorker

    template = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    spec = template["job_configuration"]["job_manifest"]["spec"]
    pod = spec["template"]["spec"]
    for key in ("completions", "parallelism"):  # Job fields, not pod fields
        if key in pod:
            spec[key] = pod.pop(key)
    defaults = {
        "image": job.image,
        "namespace": job.namespace,
        "cpu_request": job.cpu_request,
        "memory_request": job.memory_request,
        "cpu_limit": job.cpu_limit,
        "memory_limit": job.memory_limit,
        "finished_job_ttl": job.finished_job_ttl_s,
    }
    properties = template["variables"]["properties"]
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template


def rendered_job(template: dict[str, Any]) -> dict[str, Any]:
    """The Job a Kubernetes worker makes from `template` for a flow run (its variables'
    defaults; Prefect's own templating and job configuration)."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    properties = template["variables"]["properties"]
    values = {name: spec["default"] for name, spec in properties.items() if "default" in spec}
    populated = apply_values(copy.deepcopy(template["job_configuration"]), values)
    configuration = KubernetesWorkerJobConfiguration(**populated)
    configuration.prepare_for_flow_run(FlowRun(flow_id=uuid4(), name=RUN_NAME))
    return dict(configuration.job_manifest)


def write_job_template(job: PoolJobParams, path: Path) -> dict[str, Any]:
    """Write the template to `path` (JSON, for `prefect work-pool create NAME --type kubernetes
    --base-job-template PATH`) once the Job it renders is valid Kubernetes (DeployError, and
    nothing written, otherwise); the rendered Job."""
    template = job_template(job)
    job_manifest = checked([rendered_job(template)])[0]
    write_text_atomic(path, json.dumps(template, indent=2) + "\n")
    return job_manifest
