"""Controller decisions, the audit trail, deploy-address checks and k8s manifests."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from maas.audit import AuditTrail
from maas.config import load_params
from maas.errors import LockBusy
from maas.operate.controller import controller_lock, policy_problem
from maas.operate.history import History
from maas.operate.kubernetes import render_kubernetes
from maas.tracking.approval import (
    OVERRIDE_BY_TAG,
    OVERRIDE_SIGNATURE_TAG,
    OVERRIDE_TAG,
    override_tags,
)
from maas.tracking.keyring import load_key
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict
from tests.helpers import ROOT

PASSED = {"validation_status": "passed", "gate_passed": "true", "infra_validation": "passed"}
KEY = "gate-key-of-this-project-" + "0" * 16


def signed(tags: dict[str, str]) -> dict[str, str]:
    """`tags` with the verdict signature the register stage writes (model m, v1, run-1)."""
    return {**tags, SIGNATURE_TAG: sign_verdict(KEY, "m", "1", "run-1", tags)}


def problem_of(tags: dict[str, str]) -> str | None:
    return policy_problem(KEY, "m", "1", "run-1", tags)


def kubernetes_params(tmp_path: Path, *overrides: str):
    """A real SQLite registry and the real kubernetes target (renders manifests); `overrides`
    come last and win."""
    return load_params(
        ROOT / "params.yaml",
        [
            f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"registry.artifact_root={tmp_path / 'artifacts'}",
            f"deploy.state_dir={tmp_path / 'deploy'}",
            f"deploy.audit_log={tmp_path / 'a.jsonl'}",
            "deploy.target=kubernetes",
            f"deploy.kubernetes_dir={tmp_path / 'k8s'}",
            f"promotion.verdict_key_file={tmp_path / 'gate.key'}",
            *overrides,
        ],
    )


def champion_by_hand(client, params, source: Path, tags: dict[str, str], signed: bool = True):
    """Version 1 made champion outside the pipeline; `signed`: with the verdict signature the
    register stage would have written (maas.tracking.verdict)."""
    from maas.tracking.keyring import load_key
    from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict

    name = params.registry.model_name
    client.create_registered_model(name)
    version = client.create_model_version(name, str(source), tags=tags)
    if signed:
        key = load_key(params.promotion.verdict_key_file, create=True)
        signature = sign_verdict(key, name, "1", version.run_id, tags)
        client.set_model_version_tag(name, "1", SIGNATURE_TAG, signature)
    client.set_registered_model_alias(name, "champion", "1")


def test_policy_accepts_a_clean_version_and_names_every_problem() -> None:
    assert problem_of(signed(PASSED)) is None
    failed_gate = signed(
        {**PASSED, "gate_passed": "false", "gate_reasons": '["ROC AUC 0.61 < 0.65"]'}
    )
    assert "did not pass the gate (ROC AUC 0.61 < 0.65)" in str(problem_of(failed_gate))
    assert "maas approve 1 --reason" in str(problem_of(failed_gate))
    bad = signed({"validation_status": "failed", "infra_validation": "failed: /readyz not ready"})
    problem = str(problem_of(bad))
    assert "data validation failed" in problem and "no gate result" in problem
    assert "infra-validation" in problem
    assert "not signed" in str(problem_of(PASSED))  # registered outside the pipeline


def test_an_override_tag_set_in_the_registry_deploys_nothing() -> None:
    """The attack: a registry writer sets `deploy_override` on a version that failed the gate.
    Only an override a key holder signed (`maas approve`) deploys it, and no override covers a
    version whose own verdict does not verify."""
    failed = signed(
        {
            **PASSED,
            "gate_passed": "false",
            "gate_reasons": '["ROC AUC 0.61 < 0.65"]',
            "sha256.model.onnx": "a" * 64,
            "serving_code_sha256": "c" * 64,
        }
    )
    tagged = {**failed, OVERRIDE_TAG: "hotfix approved by J. Doe"}
    assert "override is refused" in str(problem_of(tagged)) and "not signed" in str(
        problem_of(tagged)
    )
    forged = {**tagged, OVERRIDE_SIGNATURE_TAG: "0" * 64, OVERRIDE_BY_TAG: "jdoe@host"}
    assert "does not match" in str(problem_of(forged))
    other_key = {**failed, **override_tags("another key", "m", "1", failed, "hotfix", "x@y")}
    assert problem_of(other_key) is not None
    approved = {**failed, **override_tags(KEY, "m", "1", failed, "hotfix", "jdoe@host")}
    assert problem_of(approved) is None
    assert problem_of({**approved, OVERRIDE_TAG: "another reason"}) is not None
    assert problem_of({**approved, OVERRIDE_BY_TAG: "someone@else"}) is not None
    # the code swapped after the approval: the verdict breaks, and no override covers that
    swapped = str(problem_of({**approved, "serving_code_sha256": "d" * 64}))
    assert "signature does not match" in swapped and "no override covers" in swapped
    unsigned = {k: v for k, v in approved.items() if k != SIGNATURE_TAG}
    assert "not signed" in str(problem_of(unsigned))


def test_audit_trail_appends_and_finds_the_previous_deployment(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml", [f"deploy.audit_log={tmp_path / 'a.jsonl'}"])
    assert (
        AuditTrail.of(params).read() == []
        and History.read(AuditTrail.of(params)).previous(None) is None
    )
    for version in ("1", "2"):
        AuditTrail.of(params).record("deployed", version, image=f"img:v{version}")
    AuditTrail.of(params).record("refused", "3", reason="gate")
    events = AuditTrail.of(params).read()
    assert [(e["event"], e["version"]) for e in events] == [
        ("deployed", "1"),
        ("deployed", "2"),
        ("refused", "3"),
    ]
    assert events[0]["actor"] == "controller" and events[0]["ts"].endswith("Z")
    assert History.read(AuditTrail.of(params)).previous("2") == "1"
    assert History.read(AuditTrail.of(params)).previous("1") == "2"


def test_controller_lock_serializes_passes(tmp_path: Path) -> None:
    order: list[str] = []

    def second() -> None:
        with controller_lock(tmp_path):
            order.append("second")

    with controller_lock(tmp_path):
        thread = threading.Thread(target=second)
        thread.start()
        # the second pass is waiting inside the lock call itself (not merely slow to start)
        deadline = time.monotonic() + 10
        while (frame := sys._current_frames().get(thread.ident or 0)) is None or (
            frame.f_code.co_name != "locked"
        ):
            assert thread.is_alive() and time.monotonic() < deadline, order
            time.sleep(0.01)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    busy = pytest.raises(LockBusy, match="controller.lock")
    with controller_lock(tmp_path), busy, controller_lock(tmp_path, wait=False):
        pass  # a scheduled pass does not queue behind a running one


def test_kubernetes_manifests_probe_readyz(tmp_path: Path) -> None:
    path = render_kubernetes(
        "flight-delay", "7", "maas-flight-delay:v7", tmp_path, image_id="ab12" * 16
    )
    deployment, service = yaml.safe_load_all(path.read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "maas-flight-delay:v7"
    # the cluster pulls by name; the validated image's ID travels with the pods
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["maas/image-id"] == "ab12" * 16
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["template"]["metadata"]["labels"]["maas/version"] == "7"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert service["spec"]["selector"] == {"app": "maas-flight-delay"}


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:port"])
def test_deploy_address_must_have_a_port(address: str, tmp_path: Path) -> None:
    from maas.config import ConfigError

    with pytest.raises(ConfigError, match=r"deploy\.address"):
        load_params(ROOT / "params.yaml", [f"deploy.address={address}"])


def test_container_names_are_scoped_by_the_state_folder(tmp_path: Path) -> None:
    from maas.operate.targets import LocalTarget

    first = LocalTarget(tmp_path / "a", "127.0.0.1:3000", "podman")
    second = LocalTarget(tmp_path / "b", "127.0.0.1:3001", "podman")
    assert first.prefix("Flight-Delay").startswith("maas-serve-flight-delay-")
    assert first.prefix("Flight-Delay") != second.prefix("Flight-Delay")
    assert first.prefix("x") == LocalTarget(tmp_path / "a", "127.0.0.1:3000", "").prefix("x")


def test_a_failed_deploy_waits_unless_the_alias_is_set_again(tmp_path: Path) -> None:
    """Real SQLite registry and the real kubernetes target; the release flow is replaced by
    a call that fails once and then renders the manifests."""
    import time

    from mlflow import MlflowClient

    from maas.audit import AuditTrail
    from maas.operate.controller import reconcile_once
    from maas.operate.targets import make_target

    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    champion_by_hand(client, params, tmp_path, PASSED)
    target = make_target(params)
    calls: list[str] = []

    def release(version: str):
        calls.append(version)
        if len(calls) == 1:
            raise RuntimeError("image build failed")
        return target.deploy(name, version, f"maas-{name}:v{version}", "ab12" * 16)

    assert reconcile_once(params, client, target, release).action == "failed"
    tags = client.get_model_version(name, "1").tags
    assert tags["deploy_status"] == "failed" and "image build failed" in tags["deploy_reason"]
    assert float(tags["deploy_attempted_at"]) <= time.time()
    assert reconcile_once(params, client, target, release).action == "waiting"
    assert calls == ["1"]  # not retried on every pass
    outcome = reconcile_once(params, client, target, release, retry=frozenset({"1"}))
    assert outcome.action == "deployed" and calls == ["1", "1"]
    assert reconcile_once(params, client, target, release).action == "in_sync"
    manifest = tmp_path / "k8s" / f"maas-{name}.yaml"
    assert f"maas-{name}:v1" in manifest.read_text()
    assert outcome.detail == manifest.resolve().as_uri()
    mirrored = [(e["event"], e["version"]) for e in AuditTrail.of(params, client).read_mlflow()]
    assert mirrored == [("promoted", "1"), ("failed", "1"), ("deployed", "1")]  # set by hand
    assert [(e["event"], e["version"]) for e in AuditTrail.of(params).read()] == mirrored


def test_a_verdict_set_by_hand_is_refused_even_with_an_override_tag(tmp_path: Path) -> None:
    """`gate_passed=true` is a tag anyone with registry write access can set: a version made
    outside the pipeline, or whose failed verdict was flipped by hand, is refused, and a
    `deploy_override` tag does not change that; `maas approve` refuses to sign it too."""
    from mlflow import MlflowClient

    from maas.errors import ApprovalError
    from maas.operate.controller import reconcile_once
    from maas.operate.promotion import approve
    from maas.operate.targets import make_target

    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    load_key(params.promotion.verdict_key_file, create=True)  # this project's own key
    champion_by_hand(client, params, tmp_path, PASSED, signed=False)
    target = make_target(params)

    def release(version: str):
        return target.deploy(name, version, f"maas-{name}:v{version}", "ab12" * 16)

    outcome = reconcile_once(params, client, target, release)
    assert outcome.action == "refused" and "not signed" in str(outcome.detail)
    assert client.get_model_version(name, "1").tags["deploy_status"] == "refused"
    client.set_model_version_tag(name, "1", OVERRIDE_TAG, "hand-made model, approved by J. Doe")
    outcome = reconcile_once(params, client, target, release)
    assert outcome.action == "refused" and "no override covers" in str(outcome.detail)
    with pytest.raises(ApprovalError, match="not signed"):
        approve(params, "1", "hand-made model")

    flipped = kubernetes_params(tmp_path / "flipped")
    client = MlflowClient(flipped.registry.tracking_uri, flipped.registry.tracking_uri)
    champion_by_hand(client, flipped, tmp_path, {**PASSED, "gate_passed": "false"})
    client.set_model_version_tag(name, "1", "gate_passed", "true")  # flipped after signing
    outcome = reconcile_once(flipped, client, make_target(flipped), release)
    assert outcome.action == "refused" and "does not match" in str(outcome.detail)


def test_maas_approve_deploys_a_version_that_failed_the_gate_on_the_record(tmp_path) -> None:
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from maas.cli import app
    from maas.operate.controller import reconcile_once
    from maas.operate.targets import make_target

    flags = [
        f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"registry.artifact_root={tmp_path / 'artifacts'}",
        f"deploy.state_dir={tmp_path / 'deploy'}",
        f"deploy.audit_log={tmp_path / 'a.jsonl'}",
        "deploy.target=kubernetes",
        f"deploy.kubernetes_dir={tmp_path / 'k8s'}",
        f"promotion.verdict_key_file={tmp_path / 'gate.key'}",
    ]
    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    champion_by_hand(client, params, tmp_path, {**PASSED, "gate_passed": "false"})
    target = make_target(params)

    def release(version: str):
        return target.deploy(name, version, f"maas-{name}:v{version}", "ab12" * 16)

    client.set_model_version_tag(name, "1", OVERRIDE_TAG, "set in the registry")
    assert reconcile_once(params, client, target, release).action == "refused"
    reason = "hotfix, the gate's floor is being revised"
    sets = [arg for flag in flags for arg in ("--set", flag)]
    command = ["approve", "1", "--reason", reason, "-p", str(ROOT / "params.yaml"), *sets]
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    by = client.get_model_version(name, "1").tags[OVERRIDE_BY_TAG]
    assert f"approved by {by}" in done.output
    assert reconcile_once(params, client, target, release).action == "deployed"
    events = AuditTrail.of(params).read()
    assert [e["actor"] for e in events if e["event"] == "approved"] == [by]
    override = [e for e in events if e["event"] == "override"]
    assert override and override[-1]["by"] == by and override[-1]["reason"] == reason


def test_rollback_walks_back_through_the_deploy_history(tmp_path: Path) -> None:
    """v1, v2, v3 deployed, then one rollback (to v2): the next rollback goes to v1, not back
    to the bad v3; events of another model in the same trail are not this model's history."""
    params = load_params(ROOT / "params.yaml", [f"deploy.audit_log={tmp_path / 'a.jsonl'}"])
    other = load_params(
        ROOT / "params.yaml",
        [f"deploy.audit_log={tmp_path / 'a.jsonl'}", "registry.model_name=other"],
    )
    for version in ("1", "2", "3"):
        AuditTrail.of(params).record("deployed", version)
    AuditTrail.of(other).record("deployed", "9")
    AuditTrail.of(params).record("rollback", "2", previous="3")
    AuditTrail.of(params).record("deployed", "2", previous="3")
    assert History.read(AuditTrail.of(params)).previous("2") == "1"
    AuditTrail.of(params).record("rollback", "1", previous="2")
    AuditTrail.of(params).record("deployed", "1", previous="2")
    assert History.read(AuditTrail.of(params)).previous("1") is None  # nothing older to go back to
    AuditTrail.of(params).record("deployed", "3", previous="1")  # promoted by hand again
    assert History.read(AuditTrail.of(params)).previous("3") == "1"
    assert History.read(AuditTrail.of(other)).previous("9") is None


def test_a_failure_after_the_switch_is_not_a_failed_deploy(tmp_path: Path) -> None:
    """The release deployed the version, then recording its tags failed (registry down for a
    moment): the version serves, so it is `deployed` in the audit trail, never tagged failed."""
    from mlflow import MlflowClient

    from maas.audit import AuditTrail
    from maas.operate.controller import reconcile_once
    from maas.operate.targets import make_target

    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    champion_by_hand(client, params, tmp_path, PASSED)
    target = make_target(params)

    def release(version: str):
        target.deploy(name, version, f"maas-{name}:v{version}", "ab12" * 16)
        raise RuntimeError("MLflow unreachable while recording the deployment")

    outcome = reconcile_once(params, client, target, release)
    assert outcome.action == "deployed" and "recording" in outcome.detail
    assert client.get_model_version(name, "1").tags.get("deploy_status") != "failed"
    assert [e["event"] for e in AuditTrail.of(params).read()] == ["promoted", "deployed"]
    assert reconcile_once(params, client, target, release).action == "in_sync"


def test_kubernetes_pods_get_the_bearer_token_from_a_secret(tmp_path: Path) -> None:
    """The local target hands $MAAS_API_TOKEN to each container by name; the Kubernetes
    manifest must do the same through a Secret (never the value), or the pods serve unguarded."""
    path = render_kubernetes("flight-delay", "7", "maas-flight-delay:v7", tmp_path)
    deployment, _ = yaml.safe_load_all(path.read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container.get("env", [])}
    ref = env["MAAS_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "maas-api-token", "key": "token", "optional": True}
    assert "value" not in env["MAAS_API_TOKEN"]
