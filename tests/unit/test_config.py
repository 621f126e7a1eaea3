from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maas.config import ConfigError, apply_overrides, load_params, parse_params
from tests.helpers import ROOT


def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repo_params_parse_and_are_frozen(params) -> None:
    assert params.registry.model_name == "flight-delay"
    assert params.data.test_partitions == 1
    with pytest.raises(Exception, match="frozen"):
        params.train.seed = 1  # type: ignore[misc]


def test_unknown_key_is_rejected_with_its_name() -> None:
    raw = raw_params()
    raw["train"]["learnin_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"train\.learnin_rate"):
        parse_params(raw)


def test_bad_value_names_the_key() -> None:
    raw = raw_params()
    raw["train"]["batch_size"] = 0
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        parse_params(raw)
    raw = raw_params()
    raw["validation"]["ranges"][0]["severity"] = "fatal"
    with pytest.raises(ConfigError, match=r"validation\.ranges\.0\.severity"):
        parse_params(raw)


def test_unknown_section_is_rejected() -> None:
    raw = raw_params()
    raw["deployment"] = {}
    with pytest.raises(ConfigError, match="deployment"):
        parse_params(raw)


def test_packaging_and_serving_values_are_checked() -> None:
    raw = raw_params()
    raw["packaging"]["backend"] = "kaniko"
    with pytest.raises(ConfigError, match=r"packaging\.backend"):
        parse_params(raw)
    raw = raw_params()
    raw["packaging"]["infra_validation"]["tolerance"] = 0
    with pytest.raises(ConfigError, match=r"packaging\.infra_validation\.tolerance"):
        parse_params(raw)
    raw = raw_params()
    raw["serving"]["max_records"] = 0
    with pytest.raises(ConfigError, match=r"serving\.max_records"):
        parse_params(raw)


def test_override_sets_nested_values_parsed_as_yaml() -> None:
    params = load_params(ROOT / "params.yaml", ["train.max_epochs=2", "model.hidden_sizes=[8, 4]"])
    assert params.train.max_epochs == 2
    assert params.model.hidden_sizes == [8, 4]


def test_override_of_unknown_key_fails() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochz"):
        apply_overrides(raw_params(), ["train.epochz=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(raw_params(), ["no-equals-sign"])


def test_must_beat_needs_a_computed_baseline() -> None:
    raw = raw_params()
    raw["evaluate"]["baselines"] = ["prior"]
    with pytest.raises(ConfigError, match="must_beat"):
        parse_params(raw)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_digest_changes_with_params(params) -> None:
    other = load_params(ROOT / "params.yaml", ["train.seed=7"])
    assert params.digest() != other.digest()
    assert params.digest() == load_params(ROOT / "params.yaml").digest()
