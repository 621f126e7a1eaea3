"""The bad-data corpus through the real pipeline: a clear stop (or a documented warning),
nothing registered on a blocking failure, the champion unchanged."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from mlflow import MlflowClient

from maas.errors import DataError, DataValidationError
from maas.pipeline.data.windows import TEST_FILE
from tests.e2e.corruptions import CORRUPTIONS, Corruption
from tests.e2e.helpers import PARAMS, copy_months, overrides_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "delay-bad-data"


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def champion_project(tmp_path_factory, real_months, prefect_api):
    """Its own registry with a champion (v1) trained on the clean months."""
    from maas.flows.training import training

    root = tmp_path_factory.mktemp("bad-data")
    clean = copy_months(real_months, root / "clean")
    overrides = [*overrides_for(root, clean), f"registry.model_name={MODEL}"]
    training(params_file=PARAMS, overrides=overrides)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    return root, clean, client


def registry_state(client: MlflowClient) -> tuple[int, str]:
    versions = client.search_model_versions(f"name='{MODEL}'")
    return len(versions), str(client.get_model_version_by_alias(MODEL, "champion").version)


# Through the whole flow: nothing registered and the champion unchanged on a stop, a new
# version tagged with its warnings on a warning. The rest of the corpus meets the validation
# stage itself (the same function the flow's validate task calls), which is what decides.
THROUGH_THE_FLOW = {
    "missing column (arr_delay dropped)",
    "truncated parquet (half the bytes)",
    "temperatures in °C (December's temp converted)",
    "extra column (source_system)",
}


def names_the_column(message: str, corruption: Corruption) -> bool:
    """A blocking failure names its column as `column=<name>` (not merely the name somewhere:
    `_time` is inside `sched_dep_time`); an unreadable file is named as it is."""
    if corruption.outcome == "error":
        return str(corruption.column) in message
    return re.search(rf"column={re.escape(str(corruption.column))}(?![\w,])", message) is not None


def check_stop(corruption: Corruption, error: BaseException) -> str:
    message = str(error)
    assert corruption.expectation in message, message
    if corruption.column:
        assert names_the_column(message, corruption), message
    if corruption.outcome == "block":
        assert isinstance(error, DataValidationError)
        assert "[block]" in message
    return message


@pytest.mark.parametrize(
    "corruption",
    [c for c in CORRUPTIONS if c.name not in THROUGH_THE_FLOW],
    ids=[c.name for c in CORRUPTIONS if c.name not in THROUGH_THE_FLOW],
)
def test_the_validation_stage_on_a_corrupted_partition(
    corruption: Corruption, champion_project, tmp_path
) -> None:
    from maas.config import load_params
    from maas.pipeline.stages import validate_data

    root, clean, _ = champion_project
    raw = tmp_path / "raw"
    shutil.copytree(clean, raw)
    corruption.apply(raw)
    overrides = [
        *overrides_for(tmp_path, raw),
        f"registry.model_name={MODEL}",
        f"validation.cache_dir={root / 'validation-cache'}",  # the clean months: validated once
    ]
    params = load_params(PARAMS, overrides)
    if corruption.outcome == "warn":
        result = validate_data(data=params.data, validation=params.validation)
        assert result.status == "passed_with_warnings"
        summary = json.loads((params.validation.reports_dir / "summary.json").read_text())
        named = [
            w
            for w in summary["warnings"]
            if w["expectation"] == corruption.expectation and w["partition"] == "2013-12"
        ]
        assert named, summary["warnings"]
        if corruption.column:
            assert any(w["column"] == corruption.column for w in named), named
        return
    with pytest.raises((DataValidationError, DataError)) as raised:
        validate_data(data=params.data, validation=params.validation)
    check_stop(corruption, raised.value)
    assert not (params.data.processed_dir / TEST_FILE).exists()  # nothing handed on


@pytest.mark.parametrize(
    "corruption",
    [c for c in CORRUPTIONS if c.name in THROUGH_THE_FLOW],
    ids=[c.name for c in CORRUPTIONS if c.name in THROUGH_THE_FLOW],
)
def test_corrupted_partition(corruption: Corruption, champion_project, tmp_path):
    from maas.flows.training import training

    root, clean, client = champion_project
    raw = tmp_path / "raw"
    shutil.copytree(clean, raw)
    corruption.apply(raw)
    overrides = [*overrides_for(root, raw), f"registry.model_name={MODEL}"]
    before = registry_state(client)
    started = time.perf_counter()
    if corruption.outcome == "warn":
        result = training(params_file=PARAMS, overrides=overrides)
        assert result["validation"] == "passed_with_warnings"
        version = client.get_model_version(MODEL, result["registered"]["version"])
        assert version.tags["validation_status"] == "passed_with_warnings"
        summary = json.loads((root / "reports" / "validation" / "summary.json").read_text())
        named = [
            w
            for w in summary["warnings"]
            if w["expectation"] == corruption.expectation and w["partition"] == "2013-12"
        ]
        assert named, summary["warnings"]
        assert registry_state(client)[0] == before[0] + 1
        return
    with pytest.raises((DataValidationError, DataError)) as raised:
        training(params_file=PARAMS, overrides=overrides)
    message = check_stop(corruption, raised.value)
    print(
        f"{corruption.name}: stopped in {time.perf_counter() - started:.1f}s: "
        f"{message.splitlines()[1 if len(message.splitlines()) > 1 else 0][:160]}"
    )
    assert registry_state(client) == before  # nothing registered, champion unchanged
