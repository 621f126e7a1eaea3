"""What serves is written where people look, and a move made outside maas is audited.

Real SQLite registry and the real kubernetes target (renders manifests); the release is the
release flow's deploy and record steps without packaging."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from maas.audit import AuditTrail
from maas.operate.controller import reconcile_once
from maas.operate.promotion import promote
from maas.operate.records import record_deployment
from maas.operate.targets import make_target
from maas.tracking.keyring import load_key
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict
from tests.unit.operate.test_controller import PASSED, champion_by_hand, kubernetes_params


def add_version(client, params, source: Path) -> str:
    name = params.registry.model_name
    version = client.create_model_version(name, str(source), tags=PASSED)
    key = load_key(params.promotion.verdict_key_file, create=True)
    signature = sign_verdict(key, name, version.version, version.run_id, PASSED)
    client.set_model_version_tag(name, version.version, SIGNATURE_TAG, signature)
    return str(version.version)


def releasing(client, params):
    """The kubernetes target and the release flow's deploy and record steps (no packaging)."""
    name, target = params.registry.model_name, make_target(params)

    def release(version: str):
        deployment = target.deploy(name, version, f"maas-{name}:v{version}", "ab12" * 16)
        record_deployment(client, name, target.name, deployment)
        return deployment

    return target, release


def test_one_version_says_deployed_and_moves_outside_maas_are_audited(tmp_path: Path) -> None:
    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    champion_by_hand(client, params, tmp_path, PASSED)  # set by a registry client, unaudited
    assert add_version(client, params, tmp_path) == "2"
    target, release = releasing(client, params)

    def status(version: str) -> dict[str, str]:
        return client.get_model_version(name, version).tags

    def events() -> list[tuple[str, str, str]]:
        return [(e["event"], e["version"], e["actor"]) for e in AuditTrail.of(params).read()]

    outsider = f"a registry client of {params.registry.tracking_uri}"
    client.set_model_version_tag(name, "1", "deploy_reason", "an old failure")
    assert reconcile_once(params, client, target, release).action == "deployed"
    assert events() == [("promoted", "1", outsider), ("deployed", "1", "controller")]
    assert status("1")["deploy_status"] == "deployed" and "deploy_reason" not in status("1")
    model_tags = client.get_registered_model(name).tags
    assert model_tags["serving_version"] == "1"
    assert model_tags["serving_endpoint"] == status("1")["endpoint"]

    client.set_registered_model_alias(name, "champion", "2")  # what the MLflow UI sends
    assert reconcile_once(params, client, target, release).action == "deployed"
    assert events()[-2:] == [("promoted", "2", outsider), ("deployed", "2", "controller")]
    assert status("1")["deploy_status"] == "replaced" and status("1")["replaced_by"] == "2"
    assert "endpoint" not in status("1") and status("1")["replaced_at"].endswith("Z")
    assert client.get_registered_model(name).tags["serving_version"] == "2"

    client.set_registered_model_alias(name, "champion", "1")  # back in the UI: a rollback
    assert reconcile_once(params, client, target, release).action == "deployed"
    assert events()[-2:] == [("rollback", "1", outsider), ("deployed", "1", "controller")]
    assert status("2")["deploy_status"] == "rolled_back"
    assert [
        str(v.version)
        for v in client.search_model_versions(f"name = '{name}'")
        if v.tags.get("deploy_status") == "deployed"
    ] == ["1"]

    promote(params, "2")  # audited by maas itself: the controller adds no second record
    assert reconcile_once(params, client, target, release).action == "deployed"
    assert [event for event, _, _ in events()[-2:]] == ["promoted", "deployed"]
    assert events()[-2][2] != outsider
    assert reconcile_once(params, client, target, release).action == "in_sync"
    assert len(events()) == 8  # nothing recorded while in sync


def test_undeploy_takes_the_model_out_of_service_and_a_missing_model_does_not(
    tmp_path: Path,
) -> None:
    from maas.operate.promotion import undeploy

    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    name = params.registry.model_name
    champion_by_hand(client, params, tmp_path, PASSED)
    target, release = releasing(client, params)

    assert reconcile_once(params, client, target, release).action == "deployed"
    # a controller pointed at a registry without this model (a wrong URI) stops nothing
    elsewhere = kubernetes_params(
        tmp_path,
        f"registry.tracking_uri=sqlite:///{tmp_path / 'o.db'}",
        f"registry.artifact_root={tmp_path / 'other'}",
    )
    other = MlflowClient(elsewhere.registry.tracking_uri, elsewhere.registry.tracking_uri)
    outcome = reconcile_once(elsewhere, other, make_target(elsewhere), release)
    assert outcome.action == "no_champion" and "not found" in outcome.detail
    assert target.current(name) is not None

    champion, outcome = undeploy(params)
    assert champion == "1" and outcome.action == "undeployed" and outcome.version == "1"
    assert target.current(name) is None
    tags = client.get_model_version(name, "1").tags
    assert tags["deploy_status"] == "undeployed" and "endpoint" not in tags
    assert "serving_version" not in client.get_registered_model(name).tags
    assert [e["event"] for e in AuditTrail.of(params).read()][-2:] == [
        "champion_removed",
        "undeployed",
    ]
    assert reconcile_once(params, client, target, release).action == "no_champion"
    again, outcome = undeploy(params)  # again: nothing to do, and no error
    assert again is None and outcome.action == "no_champion"
    promote(params, "1")  # serves again
    assert reconcile_once(params, client, target, release).action == "deployed"


def test_deploy_status_is_written_after_what_it_vouches_for(tmp_path: Path) -> None:
    """MLflow writes tags one at a time: a reader that sees `deployed` must find the endpoint
    too (a race CI hit when `deploy_status` came first)."""
    params = kubernetes_params(tmp_path)
    real = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    champion_by_hand(real, params, tmp_path, PASSED)
    written: list[tuple[str, str]] = []

    class Recording:  # the real client; version-tag writes are noted in order
        def __getattr__(self, attribute: str):
            return getattr(real, attribute)

        def set_model_version_tag(self, name, version, key, value):
            written.append((str(version), key))
            real.set_model_version_tag(name, version, key, value)

    target, release = releasing(Recording(), params)
    assert reconcile_once(params, Recording(), target, release).action == "deployed"
    mine = [key for version, key in written if version == "1"]
    assert mine[-1] == "deploy_status" and "endpoint" in mine


def test_the_catalog_says_the_previous_version_serves_while_the_champion_failed(
    tmp_path: Path,
) -> None:
    """Issue 29.13: v2's deploy fails and v1 keeps answering; the catalog entry the pass
    publishes must say both (state `serving` with v1, champion v2 `failed` and why), not
    `failed` alone. (The kubernetes target keeps no catalog: the entry is built the same way.)"""
    from maas.operate.catalog import Catalog

    params = kubernetes_params(tmp_path)
    client = MlflowClient(params.registry.tracking_uri, params.registry.tracking_uri)
    champion_by_hand(client, params, tmp_path, PASSED)
    target, release = releasing(client, params)
    catalog = Catalog.of(params, target)
    assert reconcile_once(params, client, target, release).action == "deployed"
    assert add_version(client, params, tmp_path) == "2"
    promote(params, "2")

    def broken(version: str):
        raise RuntimeError("image build failed: disk full")

    for action in ("failed", "waiting"):  # the failing pass, then the next one
        outcome = reconcile_once(params, client, target, broken)
        assert outcome.action == action
        entry = catalog.entry(outcome.action, outcome.version, outcome.detail) or {}
        assert entry["state"] == "serving" and entry["served_version"] == "1"
        assert entry["champion_version"] == "2" and entry["champion_state"] == "failed"
        assert entry["detail"].startswith("serving v1; v2 failed: RuntimeError: image build")
    target.stop(params.registry.model_name)  # nothing answers any more
    outcome = reconcile_once(params, client, target, broken, retry=frozenset({"2"}))
    entry = catalog.entry(outcome.action, outcome.version, outcome.detail) or {}
    assert entry["state"] == "failed" and entry["served_version"] is None
    assert entry["detail"].startswith("RuntimeError: image build failed")
