"""Dynamic int8 quantization of the exported ONNX graph (off by default: docs/performance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Linear layers only: dynamic quantization turns the exported Gemm nodes into MatMulInteger
# (int8 weights, uint8 activations quantized on every call). The embedding tables (Gather)
# stay fp32: quantizing them saved a few KiB but added a DequantizeLinear per table to every
# call (benchmarks/runtime.py). So does a layer narrower than MIN_QUANTIZED_OUTPUTS (the
# 1-wide output head): it saves bytes, not time, and costs one more per-call quantize step.
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
