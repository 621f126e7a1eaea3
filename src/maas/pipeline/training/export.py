"""Serving artifacts: safetensors weights and an ONNX graph checked against torch."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from maas.errors import ExportError
from maas.pipeline.training.model import ModelConfig, ServingNet, build_network
from maas.serving.inference import MODEL_CONFIG_FILE, ONNX_FILE, PREPROCESSING_FILE, WEIGHTS_FILE

if TYPE_CHECKING:
    from maas.pipeline.training.prepare import PreparedTraining

log = logging.getLogger(__name__)

INPUT_NAMES = ["categorical", "numeric"]
# the graph's output: binary, the positive class's probability (n,); multiclass, each class's
# probability (n, classes); regression, the value (n,)
OUTPUT_NAMES = {"binary": "probability", "multiclass": "probabilities", "regression": "value"}


def save_weights(model: nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def load_weights(config: ModelConfig, path: Path) -> nn.Module:
    """Rebuild the network from JSON config + safetensors (no pickle involved)."""
    model = build_network(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def export_onnx(
    model: nn.Module, path: Path, sample_cat: np.ndarray, sample_num: np.ndarray
) -> None:
    """Export the serving output (`ServingNet`) with a dynamic batch axis, as one file."""
    wrapper = ServingNet(model).eval()
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
        output_names=[OUTPUT_NAMES[wrapper.config.head]],
        dynamic_shapes=({0: batch}, {0: batch}),
        external_data=False,
        verbose=False,
    )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def check_onnx_parity(
    model: nn.Module,
    path: Path,
    cat: np.ndarray,
    num: np.ndarray,
    tolerance: float,
    scale: float = 1.0,
) -> float:
    """Max |torch - onnxruntime| over the given rows (`output_difference`: relative to the
    value above `scale`, in units of `scale` below it; a regression passes its label's
    standard deviation); raises ExportError above tolerance. Probabilities use scale 1."""
    from maas.serving.inference import create_session, output_difference

    with torch.no_grad():
        expected = (
            ServingNet(model)
            .eval()(
                torch.as_tensor(cat, dtype=torch.long), torch.as_tensor(num, dtype=torch.float32)
            )
            .numpy()
        )
    session = create_session(path)
    actual = session.run(
        None, {"categorical": cat.astype(np.int64), "numeric": num.astype(np.float32)}
    )[0]
    max_diff = output_difference(actual, expected, scale)
    if not max_diff <= tolerance:
        raise ExportError(
            f"ONNX parity check failed: max |torch - onnx| / max({max(1.0, scale):.3g}, "
            f"|torch|) = {max_diff:.3g} > {tolerance:g}"
        )
    return max_diff


def save_model(out: Path, network: nn.Module, prepared: PreparedTraining) -> None:
    """models_dir afresh: safetensors weights, preprocessing and the network's model config
    JSON (with the decision rule chosen after fit), the ONNX graph (exported on validation
    rows and checked against torch)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_weights(network, out / WEIGHTS_FILE)
    prepared.preprocessor.save(out / PREPROCESSING_FILE)
    cast(ModelConfig, network.config).save(out / MODEL_CONFIG_FILE)
    validation = prepared.validation
    export_onnx(
        network, out / ONNX_FILE, validation.categorical.numpy(), validation.numeric.numpy()
    )
