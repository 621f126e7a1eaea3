"""`model.numeric_embeddings.kind: auto`: both embeddings trained on the same rows and seed, the
better on the validation slice kept (and saved, exported and recorded), the rule itself, and
tune's space."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from maas.config import ConfigError, load_params
from maas.config.kinds import METRICS, better, gate_metric
from maas.pipeline.evaluation.difference import metric_value
from maas.pipeline.stages import TRAIN_SUMMARY_FILE, train_model
from maas.pipeline.training.candidates import Candidate, candidate_models, chosen, with_lead
from maas.pipeline.training.tune import search_space
from maas.serving.inference import MODEL_CONFIG_FILE, ONNX_FILE
from tests.helpers import ROOT, write_flight_windows


@dataclass(frozen=True)
class Scored:  # a trained candidate as `choose` sees it
    candidate: Candidate
    predictions: np.ndarray


def scored(embedding: str, labels, predictions, kind: str, metric: str) -> Scored:
    score = metric_value(metric, kind, labels, predictions)
    return Scored(Candidate(embedding, 1, score, 1.0), predictions)


def record(embedding: str, score: float) -> Candidate:
    return Candidate(embedding, best_epoch=1, validation_score=score, seconds=1.0)


def test_the_better_validation_score_is_kept_in_the_metrics_direction() -> None:
    assert chosen([record("none", 0.71), record("piecewise_linear", 0.74)], "roc_auc") == 1
    assert chosen([record("none", 3.0), record("piecewise_linear", 4.0)], "rmse") == 0
    assert chosen([record("none", 4.0), record("piecewise_linear", 3.0)], "rmse") == 1
    assert chosen([record("none", 0.7), record("piecewise_linear", 0.7)], "roc_auc") == 0
    assert chosen([record("none", math.nan), record("piecewise_linear", 0.6)], "roc_auc") == 1
    assert chosen([record("none", 0.6), record("piecewise_linear", math.nan)], "roc_auc") == 0


def lead_of(labels, first, second, kind: str, metric: str) -> Candidate:
    one, two = (scored(e, labels, p, kind, metric) for e, p in (("none", first), ("x", second)))
    challenger = with_lead(two, one, labels, metric, kind)
    if math.isfinite(challenger.lead):
        assert challenger.lead == pytest.approx(
            better(METRICS[metric], two.candidate.validation_score, one.candidate.validation_score)
        )
        assert challenger.lead_low <= challenger.lead <= challenger.lead_high
    return challenger


def test_the_lead_is_recorded_with_its_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    signal = y + rng.normal(0, 1.0, 3000)
    weak, strong = 1 / (1 + np.exp(-(signal + rng.normal(0, 2, 3000)))), 1 / (1 + np.exp(-signal))
    assert lead_of(y, weak, strong, "binary", "roc_auc").lead_low > 0  # clear on 3,000 rows
    few = slice(0, 150)  # a nudge on 150 rows: the interval straddles zero
    nudged = np.clip(weak[few] + rng.normal(0, 0.02, 150), 0, 1)
    close = lead_of(y[few], weak[few], nudged, "binary", "roc_auc")
    assert close.lead_low < 0 < close.lead_high
    value = rng.normal(10, 3, 2000)  # an error metric: the lower RMSE leads
    worse, closer = value + rng.normal(0, 2, 2000), value + rng.normal(0, 1, 2000)
    assert lead_of(value, worse, closer, "regression", "rmse").lead_low > 0


def test_auto_stands_for_both_embeddings_and_any_other_kind_for_itself(small_params) -> None:
    auto = small_params.model.model_copy(
        update={
            "numeric_embeddings": small_params.model.numeric_embeddings.model_copy(
                update={"kind": "auto"}
            )
        }
    )
    kinds = [m.numeric_embeddings.kind for m in candidate_models(auto)]
    assert kinds == ["none", "piecewise_linear"]
    assert candidate_models(small_params.model) == [small_params.model]


@pytest.fixture
def project(tmp_path):
    def params(embedding: str, name: str):
        return load_params(
            ROOT / "params.yaml",
            [
                f"data.processed_dir={tmp_path / 'processed'}",
                "features.min_frequency=1",
                "model.kind=mlp",
                "model.cpu_kind=null",
                "model.hidden_sizes=[16]",
                f"model.numeric_embeddings.kind={embedding}",
                "model.numeric_embeddings.n_bins=8",
                "train.max_epochs=3",
                "train.batch_size=64",
                "train.device=cpu",
                f"train.models_dir={tmp_path / name}",
                f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
            ],
        )

    write_flight_windows(params("none", "unused").data, train_rows=500)
    return params, tmp_path


def trained(params):
    return train_model(
        data=params.data,
        features=params.features,
        model=params.model,
        train=params.train,
        request=params.request,
        promotion=params.promotion,
    )


def test_auto_keeps_the_candidate_that_scores_better_on_validation(project) -> None:
    params, tmp_path = project
    alone = {kind: trained(params(kind, kind)) for kind in ("none", "piecewise_linear")}
    auto = params("auto", "auto")
    summary = trained(auto)

    metric = gate_metric("binary", auto.promotion.metric).name
    # each candidate trained exactly as it trains alone (same rows, seed and epochs)
    recorded = {c["numeric_embedding"]: c for c in summary.candidates}
    assert set(recorded) == {"none", "piecewise_linear"}
    for kind, single in alone.items():
        assert recorded[kind]["validation_score"] == pytest.approx(single.validation_score)
        assert recorded[kind]["best_epoch"] == single.best_epoch
    lead = recorded["piecewise_linear"]
    assert lead["lead_low"] <= lead["lead"] <= lead["lead_high"]
    assert lead["lead"] == pytest.approx(
        alone["piecewise_linear"].validation_score - alone["none"].validation_score
    )
    best = "piecewise_linear" if lead["lead"] > 0 else "none"
    assert summary.validation_metric == metric
    assert summary.validation_score == pytest.approx(alone[best].validation_score)
    # what was kept is what is saved, exported and summarized
    models = auto.train.models_dir
    assert json.loads((models / MODEL_CONFIG_FILE).read_text())["numeric_embedding"] == best
    assert (models / ONNX_FILE).is_file()
    saved = json.loads((models / TRAIN_SUMMARY_FILE).read_text())
    assert [c["numeric_embedding"] for c in saved["candidates"]] == ["none", "piecewise_linear"]

    def losses(history):  # the same epochs (their speed aside)
        return [{k: v for k, v in h.items() if k != "samples_per_second"} for h in history]

    assert losses(saved["history"]) == losses(alone[best].history)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # both jobs' checkpoints removed
    assert alone["none"].candidates == []  # a single model records no candidates


def test_tune_searches_the_candidates_when_the_task_says_auto(small_params) -> None:
    auto = load_params(ROOT / "params.yaml", ["model.numeric_embeddings.kind=auto"])
    space = search_space(auto)
    assert space["model.numeric_embeddings.kind"].choices == ["none", "piecewise_linear"]
    assert "model.numeric_embeddings.kind" not in search_space(small_params)
    # a trial trains one model: `auto` among a space's choices is refused, naming the fix
    space = 'tune.space={"model.numeric_embeddings.kind": {"choices": ["auto", "periodic"]}}'
    with pytest.raises(ConfigError, match="cannot choose auto .* list the kinds"):
        search_space(load_params(ROOT / "params.yaml", [space]))
