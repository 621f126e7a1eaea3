"""Packaging ahead of a promotion (maas.operate.prepare): which versions, and that a registry
writer cannot make the controller run code by tagging a version as passed."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from maas.operate.controller import controller_lock
from maas.operate.prepare import Candidate, candidates, prepare_once
from tests.unit.operate.test_controller import kubernetes_params

PASSED = {"validation_status": "passed", "gate_passed": "true", "gate_signature": "0f"}


def test_the_newest_gate_passed_versions_not_packaged_yet_are_chosen() -> None:
    versions = [
        Candidate("1", {**PASSED, "infra_validation": "passed"}),
        Candidate("2", PASSED),
        Candidate("3", {**PASSED, "gate_passed": "false"}),  # refused by the gate
        Candidate("4", {**PASSED, "validation_status": "failed"}),  # its data failed
        Candidate("10", PASSED),  # by number, not as strings: 10 is the newest
        Candidate("9", PASSED, aliases=("champion",)),  # the release packages it
    ]
    assert candidates(versions, 1, set()) == ["10"]
    assert candidates(versions, 3, set()) == ["10", "2"]  # the newest 3 passed: 10, 9, 2
    assert candidates(versions, 3, {"10"}) == ["2"]  # tried once by this controller
    assert candidates(versions, 0, set()) == []
    done = [Candidate("11", {**PASSED, "infra_validation": "failed: not ready"}), *versions]
    assert candidates(done, 1, set()) == []  # the newest passed one was packaged (and failed)
    # registered on another host and seen mid-way, before its verdict's signature (the last
    # tag registration sets): not tried now, so it is packaged ahead once it is signed
    unsigned = {k: v for k, v in PASSED.items() if k != "gate_signature"}
    assert candidates([Candidate("12", unsigned), *versions], 1, set()) == []
    assert candidates([Candidate("12", PASSED), *versions], 1, set()) == ["12"]


def test_a_version_tagged_as_passed_outside_the_pipeline_is_never_packaged(tmp_path: Path):
    """The attack: a registry writer registers a version with the gate's tags and a signature
    of its own making. Packaging ahead refuses it before its recorded code is downloaded or
    run."""
    params = kubernetes_params(tmp_path, "registry.model_name=m")
    uri = str(params.registry.tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    source = tmp_path / "model"
    source.mkdir()
    (source / "serving_code.py").write_text("raise SystemExit('attacker code ran')\n")
    client.create_model_version("m", str(source), tags=PASSED)
    tried: set[str] = set()
    assert prepare_once(params, client, tried) == []
    assert tried == {"1"}  # tried once, not on every pass
    assert "infra_validation" not in client.get_model_version("m", "1").tags
    assert prepare_once(params, client, tried) == []


def test_a_busy_controller_lock_skips_the_turn(tmp_path: Path) -> None:
    params = kubernetes_params(tmp_path, "registry.model_name=m")
    uri = str(params.registry.tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    client.create_model_version("m", str(tmp_path), tags=PASSED)
    params.deploy.state_dir.mkdir(parents=True, exist_ok=True)
    tried: set[str] = set()
    with controller_lock(params.deploy.state_dir):  # a release is converging
        assert prepare_once(params, client, tried) == []
    assert tried == set()  # nothing was tried: the next idle turn packages it
    assert prepare_once(params.model_copy(deep=True), client, tried) == []
    assert tried == {"1"}  # tried then (and refused: its signature is not the gate's)
