"""The evaluate stage on a tiny project: windows and a tiny model written as the earlier stages
write them, scored against baselines fitted on the rows the network trained on."""

from __future__ import annotations

import dataclasses
import json

import pytest

from maas.pipeline.data.partitions import split_latest
from maas.pipeline.evaluation.gate import GateDecision
from maas.pipeline.evaluation.metrics import compute_metrics, fit_baselines
from maas.pipeline.stages import evaluate_model
from maas.serving.inference import OnnxModel
from tests.helpers import write_flight_windows, write_tiny_model


@pytest.fixture
def project(tmp_path, small_params):
    data = small_params.data.model_copy(update={"processed_dir": tmp_path / "processed"})
    train, test = write_flight_windows(data, test_rows=300)
    models = write_tiny_model(tmp_path / "models", small_params, train)
    evaluate = small_params.evaluate.model_copy(
        update={"metrics_path": tmp_path / "metrics.json", "plots_dir": tmp_path / "plots"}
    )
    return data, models, evaluate, train, test


def evaluated(project, small_params):
    """The project's model evaluated without a registry (seed 42, 10% validation)."""
    data, models, evaluate, _, _ = project
    return evaluate_model(
        data=data,
        train=small_params.train.model_copy(
            update={"models_dir": models, "seed": 42, "validation_fraction": 0.1}
        ),
        evaluate=evaluate,
        promotion=small_params.promotion,
        registry=None,
    )


def test_baselines_are_fitted_on_the_rows_the_network_trained_on(project, small_params) -> None:
    """The network trains on the earlier part of the training window (the latest
    `validation_fraction` only selects its epoch): baselines get exactly the same rows."""
    data, models, evaluate, train, test = project
    fraction = small_params.train.validation_fraction
    metrics = evaluate_model(
        data=data,
        train=small_params.train.model_copy(
            update={"models_dir": models, "seed": 42, "validation_fraction": fraction}
        ),
        evaluate=evaluate,
        promotion=small_params.promotion,
        registry=None,
    )
    fit_rows, _ = split_latest(train, fraction, data.time)
    pre = OnnxModel.load(models).preprocessor
    train_cat, train_num = pre.transform(fit_rows)
    test_cat, test_num = pre.transform(test)
    expected = fit_baselines(
        list(evaluate.baselines),
        train_cat,
        train_num,
        fit_rows["label"].to_numpy(),
        test_cat,
        test_num,
        42,
    )
    for name, probs in expected.items():
        want = compute_metrics(test["label"].to_numpy(), probs)
        assert metrics.baselines[name] == pytest.approx(want, abs=1e-9), name
    assert json.loads(evaluate.metrics_path.read_text())["test_rows"] == len(test)


def test_the_test_month_is_also_scored_without_the_optional_inputs(project, small_params) -> None:
    data, models, evaluate, _, test = project
    metrics = evaluated(project, small_params)
    served = OnnxModel.load(models)
    absent = served.predict(test.drop(columns=served.preprocessor.optional_inputs))
    expected = compute_metrics(test["label"].to_numpy(), absent)
    assert metrics.test_optional_absent == pytest.approx(expected, abs=1e-9)
    assert metrics.optional_inputs == served.preprocessor.optional_inputs


def test_the_alias_move_is_a_compare_and_set_against_the_champion_the_gate_saw(
    project, small_params, tmp_path
) -> None:
    """Two overlapping runs: this one's gate saw no champion; meanwhile another run made its
    own version champion. Registering must not overwrite that without a comparison."""
    from maas.config import RegistryParams
    from maas.pipeline.register import register_model
    from maas.serving.inference import MODEL_CONFIG_FILE
    from maas.tracking.registry import CHAMPION, get_alias_version
    from maas.tracking.runs import start_pipeline_run
    from maas.tracking.store import connect

    data, models, evaluate, _, _ = project
    registry = RegistryParams(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "artifacts",
        model_name="cas",
        experiment="cas",
    )
    metrics = evaluated(project, small_params)
    metrics = dataclasses.replace(
        metrics, gate=GateDecision(passed=True, promoted=True, reasons=["test"])
    )
    assert metrics.champion is None  # the gate saw no champion
    other = start_pipeline_run(registry, {"p": 1}, "digest")
    key_file = tmp_path / "gate.key"
    first = register_model(
        data=data,
        models_dir=models,
        metrics=metrics,
        registry=registry,
        tracking=other,
        params_digest="digest",
        verdict_key_file=key_file,
    )
    assert first.aliases == ["challenger", "champion"]
    mine = start_pipeline_run(registry, {"p": 1}, "digest")
    second = register_model(
        data=data,
        models_dir=models,
        metrics=metrics,
        registry=registry,
        tracking=mine,
        params_digest="digest",
        verdict_key_file=key_file,
    )
    assert second.aliases == ["challenger"]
    assert "champion moved" in second.note
    client = connect(registry)
    assert str(get_alias_version(client, "cas", CHAMPION).version) == first.version
    trained = json.loads((models / MODEL_CONFIG_FILE).read_text())  # the kind as trained
    tags = client.get_model_version("cas", first.version).tags
    assert (tags["model_kind"], tags["numeric_embedding"]) == (
        trained["kind"],
        trained["numeric_embedding"],
    )
    assert (
        "champion moved"
        in client.get_model_version("cas", second.version).tags["promotion_skipped"]
    )


def test_a_promote_landing_between_the_gates_check_and_set_is_not_overwritten(
    project, tmp_path, small_params, monkeypatch
) -> None:
    """Issue 29.10: the register stage reads `champion`, then sets it; a `maas promote` in
    between was overwritten. Both hold the champion lock now: the promote waits for the set
    and lands after it, so the person's move is the one that stands."""
    import threading
    import time

    from maas.config import RegistryParams
    from maas.pipeline import register
    from maas.tracking import registry as registry_module
    from maas.tracking.registry import CHAMPION, get_alias_version
    from maas.tracking.runs import start_pipeline_run
    from maas.tracking.store import connect

    data, models, evaluate, _, _ = project
    settings = RegistryParams(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "artifacts",
        model_name="cas-race",
        experiment="cas-race",
    )
    monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "cache"))
    metrics = evaluated(project, small_params)

    def registered(promoted: bool, champion: str | None) -> str:
        gate = GateDecision(passed=True, promoted=promoted, reasons=["test"])
        judged = dataclasses.replace(
            metrics, gate=gate, champion={"version": champion} if champion else None
        )
        return register.register_model(
            data=data,
            models_dir=models,
            metrics=judged,
            registry=settings,
            tracking=start_pipeline_run(settings, {"p": 1}, "digest"),
            params_digest="digest",
            verdict_key_file=tmp_path / "gate.key",
        ).version

    assert registered(True, None) == "1"  # champion v1
    assert registered(False, "1") == "2"  # a challenger a person will promote
    client = connect(settings)
    promoted_at: list[float] = []
    person = threading.Thread(
        target=lambda: (
            registry_module.promote(client, "cas-race", "2", reason="maas promote"),
            promoted_at.append(time.monotonic()),
        )
    )
    checked = register.champion_moved

    def check_then_let_a_person_promote(*args):
        note = checked(*args)
        person.start()  # `maas promote 2` now, between this check and the set
        time.sleep(1.0)  # time enough for it to land first, were nothing held
        return note

    monkeypatch.setattr(register, "champion_moved", check_then_let_a_person_promote)
    assert registered(True, "1") == "3"
    set_at = time.monotonic()
    person.join(timeout=30)
    assert promoted_at and promoted_at[0] >= set_at - 0.5  # it waited for the set
    assert str(get_alias_version(client, "cas-race", CHAMPION).version) == "2"  # and stands


def test_one_run_at_a_time_on_the_same_working_files(tmp_path, small_params) -> None:
    from maas.errors import RunBusy
    from maas.pipeline.data.windows import run_lock

    data = small_params.data.model_copy(update={"processed_dir": tmp_path / "processed"})
    busy = pytest.raises(RunBusy, match="another pipeline run")
    with run_lock(data, tmp_path / "models"):
        with busy, run_lock(data, tmp_path / "models", wait=False):
            pass
        with run_lock(data, tmp_path / "other-models", wait=False):
            pass  # other working files: no conflict


@pytest.mark.parametrize("stage", ["validate", "train", "evaluate"])
def test_each_dvc_stage_waits_for_the_run_lock(stage, tmp_path) -> None:
    """`maas stage ...` (what `dvc repro` runs) takes the pipeline's run lock like the flow: a
    stage started while a run holds it waits inside the lock call until the run is done."""
    import sys
    import threading
    import time

    from typer.testing import CliRunner

    from maas.cli import app
    from maas.config import load_params
    from maas.pipeline.data.windows import run_lock
    from tests.helpers import ROOT

    sets = [
        f"data.raw_dir={tmp_path / 'raw'}",
        f"data.processed_dir={tmp_path / 'processed'}",
        f"train.models_dir={tmp_path / 'models'}",
    ]
    params = load_params(ROOT / "params.yaml", sets)
    args = ["stage", stage, "-p", str(ROOT / "params.yaml")]
    args += [arg for item in sets for arg in ("--set", item)]
    if stage == "evaluate":
        args.append("--no-champion")
    done: list[int] = []
    with run_lock(params.data, params.train.models_dir):
        thread = threading.Thread(
            target=lambda: done.append(CliRunner().invoke(app, args).exit_code)
        )
        thread.start()
        deadline = time.monotonic() + 60
        while (frame := sys._current_frames().get(thread.ident or 0)) is None or (
            frame.f_code.co_name != "locked"
        ):
            assert thread.is_alive(), f"the stage ran without waiting for the lock: {done}"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    thread.join(60)
    assert done and done[0] != 0  # it went on once the lock was free (nothing to work on here)
