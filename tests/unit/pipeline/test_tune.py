"""`maas tune` on a tiny project: an Optuna study whose trials train on the validation slice,
a diverged trial pruned, the best values written where every command reads them, nested
MLflow runs, and a study that resumes instead of starting over."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from maas.config import ConfigError, load_params
from maas.pipeline.data.windows import read_lineage
from maas.pipeline.training.tune import open_study, search_space, study_name, tune_model
from tests.helpers import ROOT, write_flight_windows

SPACE = (
    'tune.space={"train.learning_rate": {"low": 0.001, "high": 0.01, "log": true}, '
    '"model.hidden_sizes": {"choices": [[16], [32, 16]]}}'
)


@pytest.fixture
def project(tmp_path):
    overrides = [
        f"data.processed_dir={tmp_path / 'processed'}",
        "features.min_frequency=1",
        "model.kind=mlp",
        "model.hidden_sizes=[16]",
        "train.max_epochs=3",
        "train.batch_size=64",
        "train.device=cpu",
        f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"registry.artifact_root={tmp_path / 'artifacts'}",
        f"tune.storage={tmp_path / 'optuna.db'}",
        f"tune.output={tmp_path / 'params.tuned.yaml'}",
        SPACE,
    ]
    params = load_params(ROOT / "params.yaml", overrides)
    write_flight_windows(params.data)
    return params, overrides


def test_a_study_prunes_a_diverged_trial_writes_the_best_and_resumes(project) -> None:
    params, overrides = project
    name = study_name(params, search_space(params), read_lineage(params.data)["train_partitions"])
    study = open_study(params, name)
    # outside the space: Optuna warns and runs it all the same; its loss turns NaN
    study.enqueue_trial({"train.learning_rate": 1e12})

    result = tune_model(params, trials=3)
    assert result.trials == {"COMPLETE": 2, "PRUNED": 1}
    assert 0.001 <= result.best_values["train.learning_rate"] <= 0.01
    assert result.best_values["model.hidden_sizes"] in ([16], [32, 16])  # a list, as params.yaml
    assert 0 < result.best_value <= 1

    # every command now trains with the tuned values; the command line still wins
    tuned = load_params(ROOT / "params.yaml", overrides)
    assert tuned.train.learning_rate == result.best_values["train.learning_rate"]
    assert tuned.model.hidden_sizes == result.best_values["model.hidden_sizes"]
    assert tuned.digest() != params.digest()
    assert (
        load_params(ROOT / "params.yaml", [*overrides, "model.dropout=0.05"]).model.dropout == 0.05
    )

    client = MlflowClient(str(params.registry.tracking_uri))
    children = client.search_runs(
        [client.get_run(result.run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert sorted(run.data.tags["optuna_state"] for run in children) == [
        "complete",
        "complete",
        "pruned",
    ]
    assert client.get_run(result.run_id).data.metrics["best_val_roc_auc"] == result.best_value

    again = tune_model(params, trials=4)  # the stored study resumes: one more trial, not four
    assert sum(again.trials.values()) == 4 and again.study == result.study


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ('tune.space={"train.lr": {"low": 0.1, "high": 1}}', "train.lr"),
        ('tune.space={"train.learning_rate": {"low": 0.1, "high": 0.1}}', "empty range"),
        ('tune.space={"data.raw_dir": {"choices": ["a"]}}', "data.raw_dir"),
        (
            'tune.space={"train.validation_fraction": {"low": 0.1, "high": 0.2}}',
            "validation_fraction",
        ),
        ('tune.space={"model.dropout": {"choices": []}}', "non-empty choices"),
    ],
)
def test_a_bad_search_space_is_named(override, named) -> None:
    with pytest.raises(ConfigError, match=named):
        load_params(ROOT / "params.yaml", [override])


def test_a_tuned_file_that_sets_other_things_is_refused(tmp_path) -> None:
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("data:\n  raw_dir: elsewhere\n")
    with pytest.raises(
        ConfigError, match=r"tuned.yaml \(tune.output\) sets what tuning cannot: data.raw_dir"
    ):
        load_params(ROOT / "params.yaml", [f"tune.output={tuned}"])
    tuned.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(ROOT / "params.yaml", [f"tune.output={tuned}"])


def test_a_cpu_host_tunes_the_kind_it_trains(project) -> None:
    """flight-delay names `model.cpu_kind: mlp`: on a CPU host its search space, its study and
    every trial are the MLP's, not TabM's (a trial of ~3 hours training a space it ignores)."""
    import optuna

    from maas.pipeline.training.fit import net_config
    from maas.pipeline.training.prepare import prepare_training
    from maas.pipeline.training.tune import fit_trial

    _, overrides = project
    host = load_params(
        ROOT / "params.yaml",
        [*overrides, "model.kind=tabm", "model.cpu_kind=mlp", "train.max_epochs=1"],
    )
    default = host.model_copy(update={"tune": host.tune.model_copy(update={"space": {}})})
    assert "model.hidden_sizes" in search_space(default)  # the MLP's default space
    name = study_name(host, search_space(host), read_lineage(host.data)["train_partitions"])
    assert "-mlp-" in name
    prepared = prepare_training(host.data, host.features, host.model, host.train)
    result, _, _ = fit_trial(optuna.trial.FixedTrial({}), host, prepared)
    assert net_config(result.model).kind == "mlp"
