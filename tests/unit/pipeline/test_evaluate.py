from __future__ import annotations

import numpy as np
import pytest

from maas.config import PromotionParams
from maas.pipeline.evaluation.gate import decide_gate
from maas.pipeline.evaluation.metrics import compute_metrics, fit_baselines
from maas.pipeline.evaluation.plots import write_plots

BASELINES = {"prior": {"roc_auc": 0.5}, "logistic_regression": {"roc_auc": 0.70}}
POLICY = PromotionParams(  # flight-delay's (its task file's floors)
    floors={"roc_auc": 0.65},
    floors_optional_absent={"roc_auc": 0.6},
    must_beat=["prior", "logistic_regression"],
    max_regression=0.005,
    require_validation=True,
    auto_promote=True,
)


def gate(auc: float, champion: float | None = None, validation: str = "passed", **policy):
    champ = None if champion is None else {"version": "3", "roc_auc": champion}
    return decide_gate(
        {"roc_auc": auc}, BASELINES, champ, validation, POLICY.model_copy(update=policy)
    )


def test_metrics_on_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    m = compute_metrics(y, np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean((np.array([0.1, 0.4, 0.35, 0.8]) - y) ** 2))
    with pytest.raises(ValueError, match="both"):
        compute_metrics(np.array([1, 1]), np.array([0.2, 0.3]))


def test_first_passing_model_becomes_champion() -> None:
    decision = gate(0.72)
    assert decision.passed and decision.promoted
    assert "no champion yet" in decision.reasons


def test_floor_and_baselines_block() -> None:
    assert not gate(0.60).passed
    decision = gate(0.69)
    assert not decision.passed and not decision.promoted
    assert any("logistic_regression" in r for r in decision.reasons)


def test_regression_vs_champion_beyond_tolerance_fails() -> None:
    decision = gate(0.71, champion=0.72)
    assert not decision.passed
    assert any("regresses vs champion v3" in r for r in decision.reasons)


def test_small_regression_passes_but_is_not_promoted() -> None:
    decision = gate(0.718, champion=0.72)
    assert decision.passed and not decision.promoted


def test_equal_to_champion_is_not_promoted() -> None:
    decision = gate(0.72, champion=0.72)
    assert decision.passed and not decision.promoted


def test_beating_champion_promotes_unless_auto_promote_is_off() -> None:
    assert gate(0.73, champion=0.72).promoted
    off = gate(0.73, champion=0.72, auto_promote=False)
    assert off.passed and not off.promoted


def test_failed_validation_never_passes() -> None:
    assert not gate(0.8, validation="failed").passed
    assert gate(0.8, validation="passed_with_warnings").passed


def test_baselines_learn_a_real_signal() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    cat = rng.integers(0, 4, (n, 2))
    num = rng.normal(size=(n, 3)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * num[:, 0] + (cat[:, 0] == 2))))).astype(int)
    probs = fit_baselines(
        ["prior", "logistic_regression", "hist_gradient_boosting"],
        cat[:1500],
        num[:1500],
        y[:1500],
        cat[1500:],
        num[1500:],
        seed=0,
    )
    aucs = {k: compute_metrics(y[1500:], p)["roc_auc"] for k, p in probs.items()}
    assert aucs["prior"] == 0.5
    assert aucs["logistic_regression"] > 0.75 and aucs["hist_gradient_boosting"] > 0.75
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baselines(["xgboost"], cat, num, y, cat, num, seed=0)


def test_baselines_fit_a_table_with_numeric_inputs_only() -> None:
    """A table with no categorical input (the corpus' digits: 64 pixel counts) stopped the run
    at evaluation: one-hot encoding zero columns is an error in scikit-learn."""
    rng = np.random.default_rng(1)
    num = rng.normal(size=(1200, 4)).astype(np.float32)
    y = num[:, 0] * 3 + rng.normal(scale=0.1, size=1200)
    none = np.empty((1200, 0), dtype=np.int64)
    values = fit_baselines(
        ["linear_regression", "hist_gradient_boosting"],
        none[:1000],
        num[:1000],
        y[:1000],
        none[1000:],
        num[1000:],
        seed=0,
        kind="regression",
    )
    for name, predicted in values.items():
        assert compute_metrics(y[1000:], predicted, kind="regression")["r2"] > 0.9, name


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_gradient_boosting_takes_a_category_of_more_values_than_its_bins(kind: str) -> None:
    """A tail number of 1,838 values at 30,000 flights stopped the run at evaluation:
    HistGradientBoosting refuses a native category column of more than 255 values. Such a
    column enters as its target encoding, and the signal it carries still counts."""
    rng = np.random.default_rng(2)
    n, values = 6000, 1500
    cat = np.stack([rng.integers(0, values, n), rng.integers(0, 4, n)], axis=1)
    num = rng.normal(size=(n, 2)).astype(np.float32)
    signal = (cat[:, 0] % 3 == 0) * 3.0 + num[:, 0] * 0.5  # carried by the wide column
    y = (signal + rng.normal(scale=0.5, size=n) > 1.5).astype(int)
    if kind == "multiclass":
        y = y + (num[:, 1] > 0.8)
    n_classes = int(y.max()) + 1
    predicted = fit_baselines(
        ["hist_gradient_boosting"],
        cat[:5000],
        num[:5000],
        y[:5000],
        cat[5000:],
        num[5000:],
        seed=0,
        kind=kind,
        n_classes=n_classes,
    )["hist_gradient_boosting"]
    metrics = compute_metrics(y[5000:], predicted, kind=kind)
    assert metrics["roc_auc" if kind == "binary" else "macro_f1"] > 0.8


def test_plots_are_written(tmp_path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    written = write_plots(y, np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1), tmp_path)
    assert {p.name for p in written} == {
        "roc.csv",
        "precision_recall.csv",
        "calibration.csv",
        "curves.png",
    }
    assert (tmp_path / "roc.csv").read_text().startswith("fpr,tpr")


def test_baseline_tolerance_is_explicit_and_never_applies_to_the_prior() -> None:
    within = gate(0.698, baseline_tolerance=0.005)
    assert within.passed
    assert any("within 0.005 of baseline logistic_regression" in r for r in within.reasons)
    assert not gate(0.69, baseline_tolerance=0.005).passed
    no_signal = decide_gate(
        {"roc_auc": 0.5},
        {"prior": {"roc_auc": 0.5}},
        None,
        "passed",
        POLICY.model_copy(update={"must_beat": ["prior"], "floors": {}, "baseline_tolerance": 0.1}),
    )
    assert not no_signal.passed


def test_a_champion_scored_on_its_own_training_rows_does_not_block() -> None:
    """Partitions removed to replay a month: the champion trained on the test month, its score
    there is inflated. The gate says so and neither blocks nor compares with it."""
    champion = {"version": "3", "roc_auc": 0.95, "train_overlap": ["2013-12"]}
    decision = decide_gate({"roc_auc": 0.72}, BASELINES, champion, "passed", POLICY)
    assert decision.passed and decision.promoted
    assert any("v3 trained on the test partition(s) 2013-12" in r for r in decision.reasons)


def test_a_champion_that_cannot_be_rescored_is_named_and_nothing_is_auto_promoted() -> None:
    """A transient error (or a refused signature) leaves no comparison: the version passes,
    and a person, not the gate, promotes it (issue 29: a transient error must not promote)."""
    champion = {"version": "3", "unscored": "OSError: connection reset while downloading"}
    decision = decide_gate({"roc_auc": 0.72}, BASELINES, champion, "passed", POLICY)
    assert decision.passed and not decision.promoted
    assert any("champion v3 could not be re-scored" in r for r in decision.reasons)
    assert any("`maas promote` it by hand" in r for r in decision.reasons)


def test_the_floor_holds_for_requests_without_the_optional_inputs() -> None:
    """The API accepts records without weather; the gate checks that request shape too."""
    absent = {"roc_auc": 0.58}
    decision = decide_gate(
        {"roc_auc": 0.72}, BASELINES, None, "passed", POLICY, optional_absent=absent
    )
    assert not decision.passed and not decision.promoted
    assert any(
        "0.5800 with the optional inputs absent is below the floor 0.6000" in r
        for r in decision.reasons
    )
    fine = decide_gate(
        {"roc_auc": 0.72}, BASELINES, None, "passed", POLICY, optional_absent={"roc_auc": 0.62}
    )
    assert fine.passed and any("with the optional inputs absent meets" in r for r in fine.reasons)


def test_the_older_floor_names_still_read() -> None:
    older = PromotionParams.model_validate({"min_roc_auc": 0.7, "min_roc_auc_optional_absent": 0.6})
    assert (older.floors, older.floors_optional_absent) == ({"roc_auc": 0.7}, {"roc_auc": 0.6})
    with pytest.raises(ValueError, match="unknown metric"):
        PromotionParams.model_validate({"floors": {"auc": 0.7}})
