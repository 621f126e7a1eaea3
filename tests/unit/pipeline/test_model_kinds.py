"""Each model kind and numeric embedding trains (the loss falls), exports to ONNX with parity,
rebuilds from its JSON config + safetensors, and scores through the serving path."""

from __future__ import annotations

import pytest
import torch

from maas.config import ModelParams
from maas.pipeline.training.export import check_onnx_parity, export_onnx, load_weights, save_weights
from maas.pipeline.training.fit import TensorSet, train_one_epoch
from maas.pipeline.training.model import (
    ModelConfig,
    TabMNet,
    build_network,
    model_config_for,
    numeric_bins,
)
from maas.serving.inference import MODEL_CONFIG_FILE, ONNX_FILE, PREPROCESSING_FILE, OnnxModel
from tests.helpers import fit_flights, make_flights

KINDS = [
    ("mlp", "piecewise_linear"),
    ("mlp", "periodic"),
    ("tabm", "none"),
    ("tabm", "piecewise_linear"),
    ("tabm", "periodic"),
]


@pytest.fixture(scope="module")
def rows(params):
    frame = make_flights(400, seed=3)
    pre = fit_flights(frame, params)
    cat, num = pre.transform(frame)
    return frame, pre, cat, num


def small(kind: str, embedding: str) -> ModelParams:
    return ModelParams.model_validate(
        {
            "kind": kind,
            "hidden_sizes": [16],
            "dropout": 0.0,
            "tabm": {"k": 4, "n_blocks": 1, "d_block": 16},
            "numeric_embeddings": {"kind": embedding, "n_bins": 8, "d_embedding": 4},
        }
    )


@pytest.mark.parametrize(("kind", "embedding"), KINDS)
def test_each_kind_trains_exports_with_parity_and_serves(rows, kind, embedding, tmp_path) -> None:
    frame, pre, cat, num = rows
    config = model_config_for(small(kind, embedding), pre.cardinalities, num)
    assert (config.kind, config.numeric_embedding) == (kind, embedding)
    assert bool(config.bins) == (embedding == "piecewise_linear")
    torch.manual_seed(0)
    model = build_network(config)
    data = TensorSet.from_numpy(cat, num, (frame["arr_delay"] >= 15).to_numpy())
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    losses = [
        train_one_epoch(model, optimizer, data, 64, torch.Generator().manual_seed(epoch))
        for epoch in range(6)
    ]
    assert losses[-1] < losses[0] * 0.95, losses
    model.eval()
    export_onnx(model, tmp_path / ONNX_FILE, cat, num)
    assert check_onnx_parity(model, tmp_path / ONNX_FILE, cat, num, 1e-5) <= 1e-5
    assert check_onnx_parity(model, tmp_path / ONNX_FILE, cat[:1], num[:1], 1e-5) <= 1e-5

    config.save(tmp_path / MODEL_CONFIG_FILE)  # rebuilt from JSON + safetensors, no pickle
    save_weights(model, tmp_path / "weights.safetensors")
    again = load_weights(
        ModelConfig.load(tmp_path / MODEL_CONFIG_FILE), tmp_path / "weights.safetensors"
    )
    inputs = (torch.as_tensor(cat[:50]), torch.as_tensor(num[:50]))
    with torch.no_grad():
        torch.testing.assert_close(again(*inputs), model(*inputs))

    pre.save(tmp_path / PREPROCESSING_FILE)
    served = OnnxModel.load(tmp_path)
    probs = served.predict({k: frame[k].tolist()[:9] for k in pre.input_columns})
    assert probs.shape == (9,) and ((probs > 0) & (probs < 1)).all()


def test_tabm_fits_each_member_and_predicts_their_mean(rows) -> None:
    _, pre, cat, num = rows
    model = build_network(model_config_for(small("tabm", "none"), pre.cardinalities, num))
    assert isinstance(model, TabMNet)
    inputs = (torch.as_tensor(cat[:10]), torch.as_tensor(num[:10]))
    model.train()
    members = model(*inputs)
    assert members.shape == (10, 4)  # one logit per member: each is fitted on its own
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(
            model.tabm.output(
                model.tabm.backbone(
                    model.tabm.ensemble_view(
                        torch.cat(
                            [
                                inputs[1],
                                *[
                                    torch.nn.functional.one_hot(inputs[0][:, i], c).float()
                                    for i, c in enumerate(pre.cardinalities)
                                ],
                            ],
                            1,
                        )
                    )
                )
            ).squeeze(-1)
        )
        torch.testing.assert_close(torch.sigmoid(model(*inputs)), expected.mean(1))


def test_bins_are_quantiles_and_a_constant_column_gets_one_bin() -> None:
    import numpy as np

    columns = np.stack([np.arange(100.0), np.zeros(100)], axis=1)
    bins = numeric_bins(columns, 4)
    assert bins[0] == [0.0, 24.75, 49.5, 74.25, 99.0]
    assert bins[1] == [0.0, 1.0]


def test_unknown_model_options_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="kind"):
        ModelParams.model_validate({"kind": "xgboost"})
    with pytest.raises(ValidationError, match="n_bins"):
        ModelParams.model_validate(
            {"numeric_embeddings": {"kind": "piecewise_linear", "n_bins": 1}}
        )
    with pytest.raises(ValidationError, match="width"):
        ModelParams.model_validate({"tabm": {"width": 3}})
