"""The signed gate verdict: what it covers, and what breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.errors import VerdictKeyError
from maas.tracking.keyring import load_key
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict, verdict_problem

TAGS = {
    "gate_passed": "true",
    "gate_promoted": "true",
    "validation_status": "passed",
    "serving_code_sha256": "c0de" * 16,
    "sha256.model.onnx": "0a" * 32,
    "sha256.preprocessing.json": "0b" * 32,
    "test_roc_auc": "0.70",
}


def signed(key: str, tags: dict[str, str] = TAGS) -> dict[str, str]:
    return {**tags, SIGNATURE_TAG: sign_verdict(key, "flight-delay", "3", "run-1", tags)}


def test_a_signed_verdict_holds_and_any_change_to_what_it_covers_breaks_it(tmp_path) -> None:
    key = load_key(tmp_path / "gate.key", create=True)
    tags = signed(key)
    assert verdict_problem(key, "flight-delay", "3", "run-1", tags) is None
    # tags it does not cover (deploy status, metrics) may change
    assert (
        verdict_problem(key, "flight-delay", "3", "run-1", {**tags, "deploy_status": "x"}) is None
    )
    for changed in (
        {"gate_passed": "false"},
        {"validation_status": "failed"},
        {"sha256.model.onnx": "ff" * 32},
        {"serving_code_sha256": "bad" * 16},
        {"sha256.extra.bin": "aa" * 32},
    ):
        problem = verdict_problem(key, "flight-delay", "3", "run-1", {**tags, **changed})
        assert problem is not None and "does not match" in problem, changed
    # the same tags on another version, run or model
    assert verdict_problem(key, "flight-delay", "4", "run-1", tags) is not None
    assert verdict_problem(key, "flight-delay", "3", "run-2", tags) is not None
    assert verdict_problem(key, "other", "3", "run-1", tags) is not None
    # another project's key
    assert verdict_problem("another key", "flight-delay", "3", "run-1", tags) is not None


def test_an_unsigned_verdict_is_named(tmp_path) -> None:
    key = load_key(tmp_path / "gate.key", create=True)
    problem = verdict_problem(key, "flight-delay", "3", "run-1", TAGS)
    assert problem is not None and "not signed" in problem


def test_the_key_file_is_made_once_private_and_a_blank_key_is_refused(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MAAS_GATE_KEY", raising=False)
    path = tmp_path / "gate.key"
    key = load_key(path, create=True)
    assert load_key(path, create=True) == key and len(key.current) >= 32 and key.older == ()
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("MAAS_GATE_KEY", "team-key-from-a-secret-store")
    assert load_key(path, create=True).current == "team-key-from-a-secret-store"
    monkeypatch.setenv("MAAS_GATE_KEY", "  ")
    with pytest.raises(VerdictKeyError, match="blank"):
        load_key(path, create=True)
    monkeypatch.delenv("MAAS_GATE_KEY")
    empty = tmp_path / "empty.key"
    empty.write_text("")
    with pytest.raises(VerdictKeyError, match="no key"):
        load_key(empty, create=True)
