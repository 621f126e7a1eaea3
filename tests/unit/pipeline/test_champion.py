"""Re-scoring the registry's champion on the new test month, against a real SQLite registry."""

from __future__ import annotations

import json

from maas.config import RegistryParams
from maas.pipeline.evaluation.champion import champion_score
from maas.pipeline.register import serving_requirements
from maas.tracking.keyring import load_key
from maas.tracking.registry import CHAMPION, register_version, set_alias
from maas.tracking.runs import start_pipeline_run
from maas.tracking.store import connect
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict
from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS, make_flights, write_tiny_model


def registry_at(tmp_path, name: str) -> RegistryParams:
    return RegistryParams(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "artifacts",
        model_name=name,
        experiment=name,
    )


def test_overlap_with_the_champions_training_partitions_is_reported(tmp_path, small_params):
    frame = make_flights(300, month=12, seed=3)
    registry = registry_at(tmp_path, "overlap")
    client = connect(registry)
    tracking = start_pipeline_run(registry, {"p": 1}, "digest")
    models = write_tiny_model(tmp_path / "models", small_params, frame)
    trained_on = {"2013-11": "a" * 64, "2013-12": "b" * 64}
    version = register_version(
        client,
        registry,
        tracking.run_id,
        models,
        {"train_partitions": json.dumps(trained_on)},
        frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].head(20),
        serving_requirements(),
    )
    key_file = tmp_path / "gate.key"
    signature = sign_verdict(
        load_key(key_file, create=True),
        registry.model_name,
        "1",
        tracking.run_id,
        dict(version.tags),
    )
    client.set_model_version_tag(registry.model_name, "1", SIGNATURE_TAG, signature)
    set_alias(client, registry.model_name, CHAMPION, version.version)
    test = frame.assign(label=(frame["arr_delay"] >= 15).astype(int))
    scored = champion_score(registry, test, ["2013-12"], verdict_key_file=key_file)
    assert scored is not None and scored["version"] == "1" and 0 <= scored["roc_auc"] <= 1
    assert scored["train_overlap"] == ["2013-12"]
    again = champion_score(registry, test, ["2014-01"], verdict_key_file=key_file)
    assert again is not None and again["train_overlap"] == []


def test_a_champion_registered_by_hand_without_digests_is_unscored(tmp_path) -> None:
    """Registered in the UI from some folder, no sha256 tags, no logged model: training
    runs go on without the champion comparison and say why."""
    registry = registry_at(tmp_path, "by-hand")
    client = connect(registry)
    client.create_registered_model(registry.model_name)
    client.create_model_version(registry.model_name, str(tmp_path), tags={})
    set_alias(client, registry.model_name, CHAMPION, "1")
    frame = make_flights(100, month=12, seed=4)
    load_key(tmp_path / "gate.key", create=True)  # this project's own key
    scored = champion_score(
        registry, frame.assign(label=0), ["2013-12"], verdict_key_file=tmp_path / "gate.key"
    )
    assert scored is not None and scored["version"] == "1"
    assert "unscored" in scored and "roc_auc" not in scored
    assert "not signed" in scored["unscored"]  # nothing of it was downloaded or run
