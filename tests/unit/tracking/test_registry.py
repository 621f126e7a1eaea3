"""Registry behaviour on a real, temporary MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maas.config import RegistryParams
from maas.errors import RegistryError
from maas.pipeline.register import serving_requirements
from maas.serving.errors import ArtifactIntegrityError
from maas.serving.inference import MODEL_CONFIG_FILE, ONNX_FILE, PREPROCESSING_FILE
from maas.tracking.registry import (
    CHAMPION,
    download_serving_artifacts,
    get_alias_version,
    get_version,
    logged_model_id,
    promote,
    register_version,
    set_alias,
)
from maas.tracking.runs import start_pipeline_run
from maas.tracking.store import connect
from maas.tracking.versions import list_versions
from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS, make_flights, write_tiny_model


@pytest.fixture(scope="module")
def store(tmp_path_factory, params):
    root = tmp_path_factory.mktemp("registry")
    registry = RegistryParams(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=root / "artifacts",
        experiment="unit",
        model_name="unit-model",
    )
    frame = make_flights(200)
    models = write_tiny_model(root / "models", params, frame)
    example = frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].head(3)
    client = connect(registry)

    def new_version(tags: dict[str, str]):
        tracking = start_pipeline_run(registry, {"p": 1}, "digest")
        version = register_version(
            client, registry, tracking.run_id, models, tags, example, serving_requirements()
        )
        tracking.finish("FINISHED")
        return version

    return registry, client, new_version, frame


def test_version_carries_lineage_tags_and_digests(store) -> None:
    registry, client, new_version, _ = store
    version = new_version({"git_commit": "abc", "gate_passed": "true", "test_roc_auc": "0.71"})
    tags = get_version(client, registry.model_name, version.version).tags
    assert tags["git_commit"] == "abc"
    assert {f"sha256.{n}" for n in (ONNX_FILE, PREPROCESSING_FILE, MODEL_CONFIG_FILE)} <= set(tags)
    assert version.run_id


def test_pyfunc_predicts_from_raw_records(store) -> None:
    import mlflow

    registry, _, new_version, frame = store
    version = new_version({})
    model = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{version.version}")
    out = model.predict(frame.head(5))
    assert list(out.columns) == ["delay_probability", "delayed"] and len(out) == 5
    without_weather = frame.head(2).drop(columns=["temp", "wind_gust"])
    assert len(model.predict(without_weather)) == 2  # optional weather fields may be absent


def test_aliases_promote_and_status(store) -> None:
    registry, client, new_version, _ = store
    first, second = new_version({"gate_passed": "true"}), new_version({"gate_passed": "false"})
    set_alias(client, registry.model_name, CHAMPION, first.version)
    promote(client, registry.model_name, second.version, reason="test")
    champion = get_alias_version(client, registry.model_name, CHAMPION)
    assert str(champion.version) == str(second.version)
    assert champion.tags["previous_champion"] == str(first.version)
    rows = {r.version: r for r in list_versions(client, registry.model_name)}
    assert rows[str(second.version)].aliases == [CHAMPION]
    assert CHAMPION not in rows[str(first.version)].aliases
    with pytest.raises(RegistryError, match="no version '999'"):
        promote(client, registry.model_name, "999")


def test_download_verifies_digests_and_detects_tampering(store, tmp_path: Path) -> None:
    registry, client, new_version, _ = store
    version = new_version({})
    folder = download_serving_artifacts(client, version, tmp_path / "ok")
    assert (folder / ONNX_FILE).is_file()
    # Tamper with the stored artifact itself, as an attacker with store access would.
    location = client.get_logged_model(logged_model_id(version)).artifact_location
    stored = Path(location.removeprefix("file://")) / "artifacts" / PREPROCESSING_FILE
    data = json.loads(stored.read_text())
    data["numeric"]["distance"]["std"] *= 2
    stored.write_text(json.dumps(data))
    with pytest.raises(ArtifactIntegrityError, match="preprocessing.json"):
        download_serving_artifacts(client, version, tmp_path / "bad")


def test_unreachable_server_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    params = RegistryParams(tracking_uri="http://127.0.0.1:9", experiment="x", model_name="x")
    with pytest.raises(RegistryError, match="127.0.0.1:9.*not reachable"):
        connect(params, retries=2, backoff_s=0.01)


def test_no_champion_is_none(store) -> None:
    registry, client, *_ = store
    assert get_alias_version(client, registry.model_name, "nobody") is None
