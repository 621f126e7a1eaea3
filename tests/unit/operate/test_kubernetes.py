"""The kubernetes target: a Deployment + Service per model and one Ingress with the local
gateway's paths, each checked against the official Kubernetes schemas before it is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maas.config import MonitoringParams
from maas.errors import DeployError
from maas.operate.kubernetes import INGRESS_FILE, KubernetesTarget, checked


def test_one_ingress_routes_every_model_and_follows_them_out(tmp_path: Path) -> None:
    target = KubernetesTarget(tmp_path / "state", tmp_path / "k8s", default="flight-delay")
    target.deploy("flight-delay", "3", "maas-flight-delay:v3", "ab12" * 16)
    target.deploy("hotel-rates", "1", "maas-hotel-rates:v1", "cd34" * 16)
    ingress = yaml.safe_load((tmp_path / "k8s" / INGRESS_FILE).read_text())
    paths = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths == {
        "/models/flight-delay(/|$)(.*)": "maas-flight-delay",
        "/models/hotel-rates(/|$)(.*)": "maas-hotel-rates",
    }
    assert ingress["spec"]["defaultBackend"]["service"]["name"] == "maas-flight-delay"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"

    target.stop("flight-delay")
    ingress = yaml.safe_load((tmp_path / "k8s" / INGRESS_FILE).read_text())
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == [
        "/models/hotel-rates(/|$)(.*)"
    ]
    assert "defaultBackend" not in ingress["spec"]
    assert not (tmp_path / "k8s" / "maas-flight-delay.yaml").exists()
    assert target.stop_all() == ["hotel-rates"]
    assert not (tmp_path / "k8s" / INGRESS_FILE).exists()


def test_a_manifest_the_schemas_refuse_is_named(tmp_path: Path) -> None:
    target = KubernetesTarget(tmp_path / "state", tmp_path / "k8s")
    target.deploy("flight-delay", "3", "maas-flight-delay:v3", "")
    path = tmp_path / "k8s" / "maas-flight-delay.yaml"
    deployment, service = yaml.safe_load_all(path.read_text())
    checked([deployment, service])  # what the target writes passes
    del deployment["spec"]["selector"]
    with pytest.raises(DeployError, match=r"Deployment maas-flight-delay .*'selector' is a requ"):
        checked([deployment])
    service["spec"]["ports"][0]["targetPorts"] = 3000  # a typo: strict validation refuses it
    with pytest.raises(DeployError, match=r"Service maas-flight-delay .*spec/ports/0.*targetPorts"):
        checked([service])


def test_pods_log_their_predictions_to_a_claim_of_the_model(tmp_path: Path) -> None:
    """monitoring.log with a storage class: the pods get the prediction log's settings and one
    ReadWriteMany claim per model of that class; without a class they log nothing."""
    from maas.config import MonitoringParams
    from maas.serving import prediction_log

    settings = MonitoringParams(
        log_max_bytes=1 << 20,
        log_backups=3,
        kubernetes_storage_class="nfs-client",
        kubernetes_log_size="5Gi",
    )
    target = KubernetesTarget(tmp_path / "state", tmp_path / "k8s", replicas=2, monitoring=settings)
    target.deploy("flight-delay", "3", "maas-flight-delay:v3", "")
    manifest = (tmp_path / "k8s" / "maas-flight-delay.yaml").read_text()
    deployment, _, claim = yaml.safe_load_all(manifest)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[prediction_log.DIR_ENV] == prediction_log.MOUNT
    assert env[prediction_log.MAX_BYTES_ENV] == str(1 << 20)
    assert env[prediction_log.BACKUPS_ENV] == "3"
    assert {"name": "predictions", "mountPath": prediction_log.MOUNT} in container["volumeMounts"]
    assert pod["volumes"][-1]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["name"] == "maas-flight-delay-predictions"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "nfs-client"
    for number, off in enumerate([MonitoringParams(), settings.model_copy(update={"log": False})]):
        target = KubernetesTarget(tmp_path / f"s{number}", tmp_path / f"k{number}", monitoring=off)
        target.deploy("m", "1", "m:v1", "")  # no class (the default), or the log off
        documents = list(yaml.safe_load_all((tmp_path / f"k{number}" / "maas-m.yaml").read_text()))
        volumes = documents[0]["spec"]["template"]["spec"]["volumes"]
        assert len(documents) == 2 and all("emptyDir" in volume for volume in volumes)


def test_pods_are_confined_and_limited_like_local_containers(tmp_path: Path) -> None:
    """Issue 27 item 7 on the kubernetes target: a read-only root file system with an emptyDir
    for each path the service writes, no capabilities, no privilege escalation, the default
    seccomp profile, resource requests and limits (the deploy settings), and the prediction
    log's keys and redactions passed on."""
    from maas.release.containers import WRITABLE, Limits
    from maas.serving import prediction_log

    settings = MonitoringParams(kubernetes_storage_class="nfs", redact={"tailnum": "drop"})
    target = KubernetesTarget(
        tmp_path / "state",
        tmp_path / "k8s",
        monitoring=settings,
        log_keys=["flight", "year"],
        limits=Limits(memory_mb=1024, cpus=1.5, pids=100),
    )
    target.deploy("flight-delay", "3", "maas-flight-delay:v3", "")
    deployment, *_ = yaml.safe_load_all((tmp_path / "k8s" / "maas-flight-delay.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert set(WRITABLE) | {prediction_log.MOUNT} == mounted
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1024Mi", "cpu": "1.5"},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[prediction_log.KEYS_ENV] == "flight,year"
    assert env["BENTOML_HOME"].startswith(tuple(WRITABLE))
    assert env[prediction_log.REDACT_ENV] == '{"tailnum": "drop"}'
    assert float(env[prediction_log.RETENTION_ENV]) == 90


def test_pods_say_where_prometheus_scrapes_them(tmp_path: Path) -> None:
    """Issue 32 item 5: the usual prometheus.io annotations point a `kubernetes_sd_configs`
    scrape at the service's own /metrics on its container port; the pod's labels name the
    model and version (what the Grafana dashboard groups by)."""
    target = KubernetesTarget(tmp_path / "state", tmp_path / "k8s")
    target.deploy("flight-delay", "3", "maas-flight-delay:v3", "")
    deployment, *_ = yaml.safe_load_all((tmp_path / "k8s" / "maas-flight-delay.yaml").read_text())
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    labels = template["metadata"]["labels"]
    assert (labels["maas/model"], labels["maas/version"]) == ("flight-delay", "3")
