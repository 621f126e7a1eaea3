"""Serving artifacts: safetensors weights and an ONNX graph checked against torch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from maas.model import ModelConfig, ProbabilityNet, TabularNet

log = logging.getLogger(__name__)

INPUT_NAMES = ["categorical", "numeric"]
OUTPUT_NAME = "delay_probability"


class ExportError(RuntimeError):
    """The ONNX graph does not reproduce the torch model; nothing may be registered."""


def save_weights(model: TabularNet, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def load_weights(config: ModelConfig, path: Path) -> TabularNet:
    """Rebuild the network from JSON config + safetensors (no pickle involved)."""
    model = TabularNet(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def export_onnx(
    model: TabularNet, path: Path, sample_cat: np.ndarray, sample_num: np.ndarray
) -> None:
    """Export probabilities with a dynamic batch axis, as one self-contained file."""
    wrapper = ProbabilityNet(model).eval()
    args = (
        torch.as_tensor(sample_cat[:4], dtype=torch.long),
        torch.as_tensor(sample_num[:4], dtype=torch.float32),
    )
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        wrapper,
        args,
        dynamo=True,
        input_names=INPUT_NAMES,
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch}, {0: batch}),
        external_data=False,
        verbose=False,
    )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def check_onnx_parity(
    model: TabularNet, path: Path, cat: np.ndarray, num: np.ndarray, tolerance: float
) -> float:
    """Max |torch - onnxruntime| over the given rows; raises ExportError above tolerance."""
    from maas.inference import create_session

    with torch.no_grad():
        expected = (
            ProbabilityNet(model)
            .eval()(
                torch.as_tensor(cat, dtype=torch.long), torch.as_tensor(num, dtype=torch.float32)
            )
            .numpy()
        )
    session = create_session(path)
    actual = session.run(
        None, {"categorical": cat.astype(np.int64), "numeric": num.astype(np.float32)}
    )[0]
    max_diff = float(np.max(np.abs(actual - expected))) if len(expected) else 0.0
    if not max_diff <= tolerance:
        raise ExportError(
            f"ONNX parity check failed: max |torch - onnx| = {max_diff:.3g} > {tolerance:g}"
        )
    return max_diff


# Linear layers only: dynamic quantization turns the exported Gemm nodes into MatMulInteger
# (int8 weights, uint8 activations quantized on every call). The embedding tables (Gather)
# stay fp32: quantizing them saved ~4 KiB but added a DequantizeLinear per table to every call
# (benchmarks/runtime.py). So does a layer narrower than MIN_QUANTIZED_OUTPUTS (the 1-wide
# output head): it saves bytes, not time, and costs one more per-call quantize step.
QUANTIZED_OP_TYPES = ("MatMul",)
MIN_QUANTIZED_OUTPUTS = 8


def quantize_int8(
    src: Path,
    dst: Path,
    *,
    op_types: tuple[str, ...] = QUANTIZED_OP_TYPES,
    per_channel: bool = False,
    pre_process: bool = True,
    min_outputs: int = MIN_QUANTIZED_OUTPUTS,
) -> None:
    """Write a dynamically int8-quantized copy of the ONNX graph at `src` to `dst`.

    Weights become int8 (symmetric, per tensor unless `per_channel`); activations are
    quantized to uint8 at run time, so no calibration data is needed. `pre_process` runs
    onnxruntime's quant_pre_process (shape inference + graph optimization) first, the step
    its quantizer asks for. Linear layers with fewer than `min_outputs` output features stay
    fp32. The result loads in onnxruntime's CPUExecutionProvider.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="maas-quantize-") as scratch:
        source = Path(src)
        if pre_process:
            source = Path(scratch) / "preprocessed.onnx"
            quant_pre_process(str(src), str(source))
        quantize_dynamic(
            source,
            dst,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=narrow_linear_nodes(onnx.load(str(source)), min_outputs),
        )


def narrow_linear_nodes(model: Any, min_outputs: int) -> list[str]:
    """Names of Gemm/MatMul nodes whose constant weight has fewer than `min_outputs` columns.

    A Gemm is quantized as the MatMul the quantizer splits it into, named `<gemm>_MatMul`
    (onnxruntime.quantization.onnx_model), so both names are listed.
    """
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul") or node.input[1] not in weights:
            continue
        shape = weights[node.input[1]]
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        outputs = shape[0] if node.op_type == "Gemm" and trans_b else shape[-1]
        if outputs < min_outputs:
            names += [node.name, f"{node.name}_MatMul"]
    return names
