"""The real training flow on real data against a real MLflow registry."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from maas.cli import app
from maas.errors import DataValidationError
from tests.e2e.helpers import MONTHS, copy_months, overrides_for
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PARAMS = str(ROOT / "params.yaml")
MODEL = "flight-delay"


@pytest.fixture(scope="module")
def project(tmp_path_factory, real_months):
    root = tmp_path_factory.mktemp("project")
    raw = copy_months(real_months, root / "raw")
    every_baseline = "evaluate.baselines=[prior, logistic_regression, hist_gradient_boosting]"
    return root, [*overrides_for(root, raw), every_baseline]


@pytest.fixture(scope="module")
def client(project) -> MlflowClient:
    root, _ = project
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def first_run(project, prefect_api):
    from maas.flows.training import training

    _, overrides = project
    return training(params_file=PARAMS, overrides=overrides)


@pytest.fixture(scope="module")
def second_run(project, first_run):
    from maas.flows.training import training

    _, overrides = project
    return training(params_file=PARAMS, overrides=overrides)


def test_first_run_registers_a_champion_with_full_lineage(first_run, project, client) -> None:
    root, _ = project
    registered = first_run["registered"]
    assert registered["version"] == "1"
    assert set(registered["aliases"]) == {"challenger", "champion"}
    version = client.get_model_version(MODEL, "1")
    tags = version.tags
    assert json.loads(tags["train_partitions"]).keys() == {"2013-10", "2013-11"}
    assert list(json.loads(tags["test_partitions"])) == ["2013-12"]
    assert all(len(h) == 64 for h in json.loads(tags["train_partitions"]).values())
    assert tags["validation_status"] in {"passed", "passed_with_warnings"}
    assert tags["gate_passed"] == "true" and tags["gate_promoted"] == "true"
    assert len(tags["params_digest"]) == 64 and tags["git_commit"]
    assert float(tags["onnx_parity_max_abs_diff"]) <= 1e-5
    for name in ("model.onnx", "preprocessing.json", "model_config.json"):
        assert len(tags[f"sha256.{name}"]) == 64
    assert 0.6 < float(tags["test_roc_auc"]) < 1
    assert {
        "baseline_logistic_regression_roc_auc",
        "baseline_hist_gradient_boosting_roc_auc",
    } <= set(tags)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"

    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"roc_auc", "pr_auc", "log_loss", "brier", "accuracy"}
    assert set(metrics["baselines"]) == {"prior", "logistic_regression", "hist_gradient_boosting"}
    assert metrics["champion"] is None
    gate = metrics["gate"]
    assert (gate["passed"], gate["promoted"]) == (True, True), gate
    # the baseline it must beat (FAST: the prior) is named as beaten; no champion to compare to
    assert any(r.startswith("beats baseline prior ") for r in gate["reasons"]), gate
    assert "no champion yet" in gate["reasons"], gate

    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(version.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]  # per-epoch metrics
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"validation", "evaluation", "training"} <= artifacts
    assert (root / "reports" / "validation" / "data_docs" / "index.html").is_file()


def test_registered_pyfunc_predicts_from_raw_records(first_run, project, client) -> None:
    import mlflow

    root, _ = project
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    records = pd.read_parquet(root / "raw" / "2013-12.parquet").head(20)
    out = model.predict(records)
    assert len(out) == 20 and out["delay_probability"].between(0, 1).all()


def test_second_run_compares_with_champion_and_keeps_one(second_run, project, client) -> None:
    registered = second_run["registered"]
    assert registered["version"] == "2"
    # the same partitions with the same suite: outcomes from the first run's validation
    root, _ = project
    summary = json.loads((root / "reports" / "validation" / "summary.json").read_text())
    assert summary["cached_partitions"] == summary["partitions"] == MONTHS
    metrics = second_run["metrics"]
    assert metrics["champion"]["version"] == "1"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["compared_champion"] == "1"
    champion = client.get_model_version_by_alias(MODEL, "champion")
    holders = [
        str(v.version)
        for v in client.search_model_versions(f"name='{MODEL}'")
        if "champion" in client.get_model_version(MODEL, v.version).aliases
    ]
    assert holders == [str(champion.version)]
    # Same data, same seed: the same model, so it does not beat the champion.
    assert str(champion.version) == "1"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "2"


def run_artifacts(overrides: list[str], key: str) -> list[str]:
    """The `key` artifacts of the one training flow run started with exactly `overrides` (the
    session's Prefect server holds every module's runs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["training"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=200,
        )
        mine = [run.id for run in runs if run.parameters.get("overrides") == overrides]
        assert len(mine) == 1, f"{len(mine)} training runs with these overrides"
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=mine)
            )
        )
    return [str(a.data) for a in artifacts]


def corrupt_run(project, tmp_path: Path, corrupt) -> tuple[Path, list[str]]:
    root, overrides = project
    raw = copy_months(root / "raw", tmp_path / "raw")
    frame = pd.read_parquet(raw / "2013-11.parquet")
    corrupt(frame).to_parquet(raw / "2013-11.parquet", index=False)
    return raw, [o for o in overrides if not o.startswith("data.raw_dir=")] + [
        f"data.raw_dir={raw}"
    ]


def test_missing_column_stops_the_run_and_registers_nothing(
    second_run, project, client, tmp_path
) -> None:
    from maas.flows.training import training

    before = len(client.search_model_versions(f"name='{MODEL}'"))
    _, overrides = corrupt_run(project, tmp_path, lambda f: f.drop(columns=["dest"]))
    with pytest.raises(DataValidationError) as caught:
        training(params_file=PARAMS, overrides=overrides)
    message = str(caught.value)
    assert "expect_column_to_exist column=dest" in message and "2013-11" in message
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    failed = client.search_runs(
        [client.get_experiment_by_name("maas-flight-delay").experiment_id],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["validation_status"] == "failed"
    # what blocked the run, as this run's own Prefect artifact
    reports = run_artifacts(overrides, "validation-report")
    assert len(reports) == 1, reports
    assert "Validation blocked the run" in reports[0] and "column=dest" in reports[0]


def test_cli_exits_non_zero_on_a_domain_violation(second_run, project, client, tmp_path) -> None:
    def unknown_origin(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[:99, "origin"] = "XXX"
        return frame

    before = len(client.search_model_versions(f"name='{MODEL}'"))
    _, overrides = corrupt_run(project, tmp_path, unknown_origin)
    args = ["run", "--params", PARAMS] + [arg for o in overrides for arg in ("--set", o)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "expect_column_values_to_be_in_set column=origin" in result.output
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before


def test_status_and_manual_promotion(second_run, project, client) -> None:
    _, overrides = project
    sets = [arg for o in overrides for arg in ("--set", o)]
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json", "--params", PARAMS, *sets])
    assert result.exit_code == 0, result.output
    rows = {r["version"]: r for r in json.loads(result.output)["versions"]}
    assert "champion" in rows["1"]["aliases"] and rows["2"]["gate"] == "passed"
    result = runner.invoke(app, ["promote", "2", "--params", PARAMS, *sets])
    assert result.exit_code == 0, result.output
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    result = runner.invoke(app, ["promote", "42", "--params", PARAMS, *sets])
    assert result.exit_code == 1 and "no version '42'" in result.output


def test_prefect_artifacts_summarise_the_run(first_run) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:
        keys = ArtifactFilterKey(any_=["training-summary", "validation-report"])
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=keys))
    assert {a.key for a in artifacts} == {"training-summary", "validation-report"}
    # the session's Prefect server also holds other modules' runs (other projects, some with
    # the same model name): this run's summary names its MLflow run
    run_id = first_run["registered"]["run_id"]
    summaries = [str(a.data) for a in artifacts if a.key == "training-summary"]
    summary = next((s for s in summaries if run_id in s), "")
    assert "flight-delay version" in summary and "hist_gradient_boosting" in summary
    assert "Gate: passed" in summary
