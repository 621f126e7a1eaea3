from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from maas.pipeline.training.export import export_onnx
from maas.pipeline.training.model import TabularNet, build_model_config
from maas.pipeline.training.quantize import quantize_int8
from maas.serving.inference import create_session

CARDINALITIES = [7, 4, 12]
NUMERIC_DIM = 6


@pytest.fixture(scope="module")
def fp32_graph(tmp_path_factory):
    rng = np.random.default_rng(0)
    cat = np.stack([rng.integers(0, c, 256) for c in CARDINALITIES], axis=1).astype(np.int64)
    num = rng.normal(size=(256, NUMERIC_DIM)).astype(np.float32)
    config = build_model_config(CARDINALITIES, NUMERIC_DIM, [32, 16], 0.1, 8)
    torch.manual_seed(0)
    model = TabularNet(config).eval()
    path = tmp_path_factory.mktemp("quantize") / "model.onnx"
    export_onnx(model, path, cat, num)
    return path, cat, num


def score(path, cat, num) -> np.ndarray:
    return create_session(path).run(None, {"categorical": cat, "numeric": num})[0]


def op_counts(path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_int8_graph_loads_and_tracks_fp32(fp32_graph, tmp_path) -> None:
    src, cat, num = fp32_graph
    dst = tmp_path / "model.int8.onnx"
    quantize_int8(src, dst)
    expected, actual = score(src, cat, num), score(dst, cat, num)
    assert actual.shape == expected.shape == (len(cat),)
    assert ((actual > 0) & (actual < 1)).all()
    assert np.max(np.abs(actual - expected)) < 0.05
    assert np.max(np.abs(actual - expected)) > 0  # really a different (quantized) graph
    # Dynamic batch axis survives. Activations are quantized with the range of the whole
    # batch, so a row alone scores slightly differently than inside a batch (unlike fp32).
    alone = np.concatenate([score(dst, cat[i : i + 1], num[i : i + 1]) for i in range(16)])
    assert np.max(np.abs(alone - expected[:16])) < 0.05
    ops = op_counts(dst)
    # The two hidden layers run as integer MatMuls on dynamically quantized activations; the
    # 1-wide output head and the embeddings stay fp32.
    assert ops["DynamicQuantizeLinear"] == 2 and ops["MatMulInteger"] == 2
    assert ops["Gemm"] + ops["MatMul"] == 1
    assert "DequantizeLinear" not in ops
    int8_weights = [
        init
        for init in onnx.load(str(dst)).graph.initializer
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 2
    ]
    assert len(int8_weights) == 2  # (+ their scalar zero points)


@pytest.mark.parametrize(
    ("options", "integer_matmuls"),
    [
        ({"per_channel": True}, 2),
        ({"pre_process": False}, 2),
        ({"min_outputs": 1}, 3),  # the output head too
        ({"op_types": ("MatMul", "Gather")}, 2),  # + int8 embedding tables
    ],
)
def test_quantization_options(fp32_graph, tmp_path, options, integer_matmuls) -> None:
    src, cat, num = fp32_graph
    dst = tmp_path / "model.int8.onnx"
    quantize_int8(src, dst, **options)
    assert np.max(np.abs(score(dst, cat, num) - score(src, cat, num))) < 0.05
    ops = op_counts(dst)
    assert ops["MatMulInteger"] == integer_matmuls
    assert ("DequantizeLinear" in ops) == ("Gather" in options.get("op_types", ()))
