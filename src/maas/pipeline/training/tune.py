"""Hyperparameter search with Optuna on the training window's validation slice (the latest
part of the window in time; never the test month): TPE sampling, median pruning per epoch,
diverged trials pruned, every trial a nested MLflow run under one tuning run, and the study in
a database so that a killed search resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.config import ConfigError, Params, SearchRange, apply_overrides, parse_params
from maas.config.kinds import SCORE
from maas.pipeline.training.budget import model_for_host
from maas.pipeline.training.candidates import AUTO_EMBEDDINGS
from maas.pipeline.training.fit import TrainResult, fit
from maas.pipeline.training.model import Head
from maas.pipeline.training.prepare import PreparedTraining, augmentation, configure
from maas.tracking.runs import EpochLogger, log_metrics, start_run

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# The default search space of each model kind (params.yaml `tune.space: {}`).
_RATES = {
    "train.learning_rate": {"low": 3e-4, "high": 5e-3, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.3},
}
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {**_RATES, "model.hidden_sizes": {"choices": [[128, 64], [256, 128], [256, 128, 64]]}},
    "tabm": {
        **_RATES,
        "model.tabm.k": {"choices": [8, 16, 32]},
        "model.tabm.d_block": {"choices": [128, 256, 512]},
        "model.tabm.n_blocks": {"choices": [1, 2, 3]},
    },
}
FINISHED_STATES = ("COMPLETE", "PRUNED")
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}  # trial -> MLflow


@dataclass
class TuneResult:
    study: str
    metric: str  # the validation score maximized (maas.config.kinds.SCORE)
    best_value: float
    best_values: dict[str, Any]
    trials: dict[str, int]  # state -> how many
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_space(params: Params) -> dict[str, SearchRange]:
    """`tune.space`, or the default space of the kind this host trains (`model.kind`, or
    `model.cpu_kind` without a GPU) when it is empty; `auto` numeric embeddings become a
    choice among the candidates (training.candidates) where the space does not name them."""
    kind = model_for_host(params.model, params.train).kind
    space = dict(params.tune.space) or {
        k: SearchRange.model_validate(v) for k, v in DEFAULT_SPACES[kind].items()
    }
    key = "model.numeric_embeddings.kind"
    if params.model.numeric_embeddings.kind == "auto":
        space.setdefault(key, SearchRange.model_validate({"choices": list(AUTO_EMBEDDINGS)}))
    if key in space and "auto" in (space[key].choices or []):
        raise ConfigError(
            f"tune.space: {key} cannot choose auto (it trains several models and keeps one; "
            f"a trial trains one): list the kinds, e.g. {list(AUTO_EMBEDDINGS)}"
        )
    return space


def study_name(params: Params, space: dict[str, SearchRange], train_partitions: Any) -> str:
    """The same search on the same data resumes one study; another space or data starts anew."""
    kind = model_for_host(params.model, params.train).kind
    payload = {
        "space": {k: v.model_dump() for k, v in sorted(space.items())},
        "kind": kind,
        "data": train_partitions,
        "features": params.features.model_dump(mode="json"),
        "label": params.data.label.model_dump(mode="json"),
        "regression_loss": params.train.regression_loss,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
    return f"{params.registry.model_name}-{kind}-{digest}"


def storage_url(storage: str) -> str:
    if "://" in storage:
        return storage
    path = Path(storage).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(params: Params, name: str) -> Any:
    import optuna

    with warnings.catch_warnings():  # the heartbeat is marked experimental; it is what resumes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            storage_url(params.tune.storage), heartbeat_interval=30, grace_period=90
        )  # a trial whose process died is marked failed when the study is next run
    return optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=params.tune.seed),
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=params.tune.warmup_epochs),
    )


def suggest(trial: Any, key: str, spec: SearchRange) -> Any:
    if spec.choices is not None:  # Optuna stores choices as scalars: a list travels as JSON
        return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in spec.choices]))
    if isinstance(spec.low, int) and isinstance(spec.high, int):
        return trial.suggest_int(key, spec.low, spec.high, log=spec.log)
    assert spec.low is not None and spec.high is not None  # SearchRange checked it
    return trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)


def with_values(params: Params, values: dict[str, Any]) -> Params:
    overrides = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    return parse_params(apply_overrides(params.model_dump(mode="json"), overrides), "tune.space")


def decoded(best_params: dict[str, Any], space: dict[str, SearchRange]) -> dict[str, Any]:
    return {k: json.loads(v) if space[k].choices is not None else v for k, v in best_params.items()}


def counts(study: Any) -> dict[str, int]:
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return states


def score_key(prepared: PreparedTraining) -> str:
    """The validation score a trial maximizes: `val_<the kind's score>` (higher is better)."""
    return f"val_{SCORE[Head.of(prepared.config).kind]}"


def fit_trial(
    trial: Any,
    chosen: Params,
    prepared: PreparedTraining,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    checkpoint_path: Path | None = None,
) -> tuple[TrainResult, float, int]:
    """Train `chosen` (a trial's values over the params) on the prepared window, reporting the
    validation score to Optuna each epoch: a diverged loss or a pruned trial raises
    `optuna.TrialPruned`. Returns the result, its best epoch's validation score and that epoch."""
    import optuna

    score = score_key(prepared)

    def on_epoch_end(metrics: dict[str, float]) -> None:
        if on_epoch is not None:
            on_epoch(metrics)
        epoch = int(metrics["epoch"])
        if not math.isfinite(metrics["train_loss"]):
            raise optuna.TrialPruned(f"diverged: training loss {metrics['train_loss']}")
        trial.report(metrics[score], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    config = configure(prepared, chosen.model, chosen.train)  # the kind this host trains
    augment = augmentation(prepared.preprocessor, chosen.train)
    result = fit(
        config,
        chosen.train,
        prepared.train,
        prepared.validation,
        on_epoch_end=on_epoch_end,
        augment=augment,
        checkpoint_path=checkpoint_path,
    )
    best = next((h for h in result.history if int(h["epoch"]) == result.best_epoch), None)
    if best is None:  # no epoch had a finite validation metric
        raise optuna.TrialPruned("no epoch had a finite validation score")
    return result, float(best[score]), result.best_epoch


def run_study(
    study: Any,
    params: Params,
    prepared: PreparedTraining,
    space: dict[str, SearchRange],
    client: MlflowClient,
    parent_run: str,
    trials: int,
    timeout_s: float | None = None,
) -> None:
    """Run trials until the study holds `trials` complete or pruned ones (a resumed study
    runs only the rest) or `timeout_s` passed."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    finished = sum(counts(study).get(state, 0) for state in FINISHED_STATES)
    if finished >= trials:
        log.info("study %s already holds %d finished trials", study.study_name, finished)
        return

    def objective(trial: Any) -> float:
        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        run_id = start_run(
            client,
            params.registry,
            f"trial {trial.number}",
            values,
            {
                "mlflow.parentRunId": parent_run,
                "optuna_study": study.study_name,
                "optuna_trial": str(trial.number),
            },
        )
        epochs = EpochLogger(client, run_id)
        state = "failed"
        try:
            value, best_epoch = fit_trial(trial, with_values(params, values), prepared, epochs)[1:]
            state = "complete"
            log_metrics(
                client, run_id, {f"best_{score_key(prepared)}": value, "best_epoch": best_epoch}
            )
            return value
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            epochs.flush()
            client.set_tag(run_id, "optuna_state", state)
            client.set_terminated(run_id, RUN_STATUS[state])

    study.optimize(
        objective,
        timeout=timeout_s,
        callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
    )


def tune_model(
    params: Params, trials: int | None = None, timeout_s: float | None = None
) -> TuneResult:
    """`maas tune`: the study over the validated training window, logged as one MLflow run with
    a nested run per trial; the best values go to `tune.output`, which `maas run` reads."""
    from maas.clock import utc_timestamp
    from maas.config import write_tuned_values
    from maas.errors import MaasError
    from maas.pipeline.data.windows import read_lineage
    from maas.pipeline.training.prepare import prepare_training
    from maas.tracking.runs import RunTracking, git_commit
    from maas.tracking.store import connect

    prepared = prepare_training(params.data, params.features, params.model, params.train)
    space = search_space(params)
    name = study_name(params, space, read_lineage(params.data)["train_partitions"])
    study = open_study(params, name)
    client = connect(params.registry)
    parent = start_run(
        client,
        params.registry,
        f"tune-{utc_timestamp()}",
        {
            "tune": params.tune.model_dump(mode="json"),
            "space": {k: v.model_dump() for k, v in space.items()},
        },
        {
            "pipeline": "maas.tune",
            "optuna_study": name,
            "git_commit": git_commit(),
            "params_digest": params.digest(),
        },
    )
    tracking = RunTracking(client.tracking_uri, parent)
    with tracking.recording_outcome():
        run_study(
            study,
            params,
            prepared,
            space,
            client,
            parent,
            trials or params.tune.trials,
            timeout_s or params.tune.timeout_s,
        )
        states = counts(study)
        if not states.get("COMPLETE"):
            raise MaasError(f"no trial of study {name} completed ({states}): nothing written")
        best = decoded(study.best_params, space)
        score = SCORE[prepared.config.head]
        write_tuned_values(
            params.tune.output,
            best,
            f"written by `maas tune` at {utc_timestamp()}: study {name}, best validation {score} "
            f"{study.best_value:.4f} over {sum(states.values())} trials ({states}).\n"
            "Every maas command reads these values over params.yaml: commit this file.",
        )
        log_metrics(client, parent, {f"best_val_{score}": study.best_value})
        tracking.set_tags({"best_values": json.dumps(best)})
        tracking.log_artifact(params.tune.output, "tuning")
    return TuneResult(name, score, float(study.best_value), best, states, parent)
