"""Regression that survives real targets (issue 28 item 3): a skewed positive label learned as
log1p, served and scored in its own units, exported with parity on the output's scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from maas.config import LabelSpec, ModelParams, TrainParams
from maas.errors import TrainingError
from maas.pipeline.evaluation.metrics import compute_metrics
from maas.pipeline.training.export import check_onnx_parity, export_onnx
from maas.pipeline.training.fit import TensorSet, evaluate_epoch, fit
from maas.pipeline.training.model import Head, model_config_for
from maas.serving.inference import ONNX_FILE, PREPROCESSING_FILE, OnnxModel
from tests.unit.pipeline.test_task_kinds import prepared, stations


def incomes(seed: int = 0):
    """Rentals turned into an income: log-normal, in the tens of thousands, long right tail."""
    frame = stations(800, seed)
    rng = np.random.default_rng(seed)
    value = np.exp(9.5 + 0.06 * frame["rentals"].to_numpy() + rng.normal(0, 0.3, len(frame)))
    return frame.assign(rentals=value)


def test_a_log1p_label_trains_serves_and_scores_in_its_own_units(tmp_path) -> None:
    label, labeled, pre, cat, num, y = prepared(incomes(), "regression")
    assert y.max() > 1e5
    head = Head.for_labels("regression", y, 0, "log1p")
    assert head.target_mean == pytest.approx(np.log1p(y).mean())  # float64, after the transform
    np.testing.assert_allclose(head.unscale(head.scale(y)), y, rtol=1e-12)
    model_params = ModelParams.model_validate({"hidden_sizes": [32], "dropout": 0.0})
    config = model_config_for(model_params, pre.cardinalities, num, head)
    assert config.target_transform == "log1p"
    data = TensorSet.from_numpy(cat, num, head.scale(y))
    params = TrainParams.model_validate(
        {"max_epochs": 15, "batch_size": 64, "learning_rate": 0.01, "device": "cpu"}
    )
    result = fit(config, params, data, data)
    validation = evaluate_epoch(result.model, data)
    assert validation["val_r2"] > 0.5  # in the label's units, not log units

    export_onnx(result.model, tmp_path / ONNX_FILE, cat, num)
    scale = head.output_scale
    assert scale > 1e4  # a typical value, in the label's units
    assert check_onnx_parity(result.model, tmp_path / ONNX_FILE, cat, num, 1e-5, scale) <= 1e-5
    pre.save(tmp_path / PREPROCESSING_FILE)
    served = OnnxModel.load(tmp_path).predict(labeled)
    assert np.median(served) == pytest.approx(np.median(y), rel=0.3)  # expm1 in the graph
    metrics = compute_metrics(y, served, "regression")
    assert metrics["r2"] > 0.5 and metrics["rmse"] < np.std(y)


def test_log1p_is_for_regression_labels_above_minus_one() -> None:
    with pytest.raises(ValidationError, match="`transform` is for regression labels"):
        LabelSpec.model_validate(
            {"column": "c", "kind": "binary", "positive": 1, "transform": "log1p"}
        )
    with pytest.raises(TrainingError, match="labels above -1; the smallest is -3"):
        Head.for_labels("regression", np.array([1.0, -3.0, 5.0]), 0, "log1p")


def test_standardization_is_float64_for_values_near_1e5() -> None:
    """float32 would round 100000.004 to 100000.0: the mean and spread come out in float64."""
    labels = np.array([100000.001, 100000.002, 100000.004], dtype=np.float64)
    head = Head.for_labels("regression", labels, 0)
    assert head.target_std == pytest.approx(np.std(labels), rel=1e-9)
    np.testing.assert_allclose(head.unscale(head.scale(labels)), labels, rtol=0, atol=1e-9)
    assert torch.as_tensor(head.scale(labels), dtype=torch.float32).std() > 0
