"""The gate key's lifecycle (issue 27 item 14): a host that only verifies never invents a key,
a rotation keeps older versions deployable, and retiring a key is refused while versions the
team may serve again depend on it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow import MlflowClient

from maas.errors import VerdictKeyError
from maas.operate import keys
from maas.operate.controller import policy_problem, reconcile_once
from maas.operate.targets import make_target
from maas.tracking import keyring
from maas.tracking.keyring import Keyring, fingerprint, load_key
from maas.tracking.verdict import sign_verdict, verdict_problem
from tests.unit.operate.test_controller import PASSED, champion_by_hand, kubernetes_params

TAGS = {"gate_passed": "true", "validation_status": "passed"}


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch) -> None:
    monkeypatch.delenv("MAAS_GATE_KEY", raising=False)


def test_a_host_that_only_verifies_never_makes_a_key(tmp_path: Path, caplog) -> None:
    path = tmp_path / "gate.key"
    with pytest.raises(VerdictKeyError, match=f"no gate key on this host: {path} is missing"):
        load_key(path)
    assert not path.exists()
    with caplog.at_level(logging.WARNING, logger="maas.tracking.keyring"):
        made = load_key(path, create=True)  # the register stage: made once, and said loudly
    assert f"made a new gate key {path} (fingerprint {fingerprint(made.current)})" in caplog.text
    assert made.current not in caplog.text


def test_a_rotation_keeps_older_versions_verifying_until_the_key_is_retired(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gate.key"
    before = load_key(path, create=True)
    old_signature = sign_verdict(before, "m", "1", "run-1", TAGS)
    rotated = keyring.rotate(path)
    assert rotated.current != before.current and rotated.older == (before.current,)
    assert path.stat().st_mode & 0o777 == 0o600 and load_key(path) == rotated
    signed_before = {**TAGS, "gate_signature": old_signature}
    assert verdict_problem(rotated, "m", "1", "run-1", signed_before) is None
    new_signature = sign_verdict(rotated, "m", "2", "run-2", TAGS)
    assert new_signature == sign_verdict(rotated.current, "m", "2", "run-2", TAGS)
    with pytest.raises(VerdictKeyError, match="current key"):
        keyring.retire(path, fingerprint(rotated.current))
    retired = keyring.retire(path, fingerprint(before.current))
    assert retired == Keyring(rotated.current) and load_key(path) == retired
    assert "does not match" in str(verdict_problem(retired, "m", "1", "run-1", signed_before))
    with pytest.raises(VerdictKeyError, match="no key with fingerprint"):
        keyring.retire(path, fingerprint(before.current))


def test_a_team_key_in_the_environment_may_hold_a_ring(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAAS_GATE_KEY", "new-team-key, old-team-key")
    ring = load_key(tmp_path / "unused.key")
    assert ring == Keyring("new-team-key", ("old-team-key",))
    assert not (tmp_path / "unused.key").exists()
    with pytest.raises(VerdictKeyError, match="MAAS_GATE_KEY is set"):
        keyring.rotate(tmp_path / "unused.key")


def test_retiring_a_key_that_signed_a_rollback_target_is_refused(tmp_path: Path) -> None:
    """Real SQLite registry: v1 was signed before the rotation; retiring its key would make it
    undeployable, so `maas key retire` names it and stops unless forced."""
    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    champion_by_hand(client, params, tmp_path, PASSED)
    old = load_key(params.promotion.verdict_key_file)
    keys.rotate(params)
    uses = keys.key_uses(params)
    assert [(use.current, use.versions) for use in uses] == [(True, ()), (False, ("1",))]
    version = client.get_model_version(params.registry.model_name, "1")
    ring = load_key(params.promotion.verdict_key_file)

    def problem() -> str | None:
        keys_now = load_key(params.promotion.verdict_key_file)
        name = params.registry.model_name
        return policy_problem(keys_now, name, "1", version.run_id, dict(version.tags))

    assert problem() is None  # still deployable after the rotation
    with pytest.raises(VerdictKeyError, match="signed v1 of flight-delay"):
        keys.retire(params, fingerprint(old.current))
    assert load_key(params.promotion.verdict_key_file) == ring  # nothing changed
    keys.retire(params, fingerprint(old.current), force=True)
    assert "signature does not match" in str(problem())  # refused from now on
    events = [e["event"] for e in keys.AuditTrail.of(params).read()]
    assert events[-2:] == ["key_rotated", "key_retired"]


def test_a_controller_without_the_key_deploys_nothing_and_says_why(tmp_path: Path) -> None:
    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    champion_by_hand(client, params, tmp_path, PASSED)
    params.promotion.verdict_key_file.unlink()  # a deploy host the key was never copied to
    target = make_target(params)
    with pytest.raises(VerdictKeyError, match="no gate key on this host"):
        reconcile_once(params, client, target, lambda version: pytest.fail("deployed"))
    assert target.current(params.registry.model_name) is None
    tags = client.get_model_version(params.registry.model_name, "1").tags
    assert "deploy_status" not in tags and not params.promotion.verdict_key_file.exists()
