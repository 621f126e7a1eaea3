from __future__ import annotations

import json

import pytest
import torch

from maas.errors import ExportError
from maas.pipeline.training.export import check_onnx_parity, export_onnx, load_weights, save_weights
from maas.pipeline.training.model import TabularNet, build_model_config
from maas.serving.errors import ArtifactIntegrityError
from maas.serving.inference import (
    ONNX_FILE,
    PREPROCESSING_FILE,
    SERVING_FILES,
    OnnxModel,
    sha256_file,
    verify_digests,
)
from tests.helpers import fit_flights, make_flights


@pytest.fixture(scope="module")
def exported(tmp_path_factory, params):
    folder = tmp_path_factory.mktemp("serving")
    frame = make_flights(300)
    pre = fit_flights(frame, params)
    cat, num = pre.transform(frame)
    config = build_model_config(pre.cardinalities, num.shape[1], [32, 16], 0.1, 8)
    torch.manual_seed(0)
    model = TabularNet(config).eval()
    export_onnx(model, folder / ONNX_FILE, cat, num)
    pre.save(folder / PREPROCESSING_FILE)
    config.save(folder / "model_config.json")
    save_weights(model, folder / "weights.safetensors")
    return folder, model, pre, cat, num


def test_onnx_matches_torch_within_tolerance(exported) -> None:
    folder, model, _, cat, num = exported
    assert check_onnx_parity(model, folder / ONNX_FILE, cat, num, 1e-5) <= 1e-5
    # Dynamic batch axis: one row and many rows both work.
    assert check_onnx_parity(model, folder / ONNX_FILE, cat[:1], num[:1], 1e-5) <= 1e-5


def test_parity_failure_blocks_registration(exported) -> None:
    folder, model, _, cat, num = exported
    other = TabularNet(model.config).eval()  # different weights than the exported graph
    with pytest.raises(ExportError, match="parity"):
        check_onnx_parity(other, folder / ONNX_FILE, cat, num, 1e-5)


def test_safetensors_round_trip(exported) -> None:
    folder, model, _, cat, num = exported
    reloaded = load_weights(model.config, folder / "weights.safetensors")
    args = (torch.as_tensor(cat), torch.as_tensor(num))
    torch.testing.assert_close(reloaded(*args), model(*args))


def test_onnx_model_scores_raw_records(exported) -> None:
    folder, *_ = exported
    served = OnnxModel.load(folder)
    records = make_flights(7, seed=9)
    probs = served.predict({k: records[k].tolist() for k in served.preprocessor.input_columns})
    assert probs.shape == (7,) and ((probs > 0) & (probs < 1)).all()
    assert served.predict({k: [] for k in served.preprocessor.input_columns}).shape == (0,)


def test_digests_are_verified_and_tampering_refused(exported, tmp_path) -> None:
    folder, *_ = exported
    digests = {name: sha256_file(folder / name) for name in SERVING_FILES}
    assert verify_digests(folder, digests) == digests
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in SERVING_FILES:
        (copy / name).write_bytes((folder / name).read_bytes())
    data = json.loads((copy / PREPROCESSING_FILE).read_text())
    data["numeric"]["distance"]["mean"] += 1
    (copy / PREPROCESSING_FILE).write_text(json.dumps(data))
    with pytest.raises(ArtifactIntegrityError, match="preprocessing.json.*modified"):
        OnnxModel.load(copy, expected_digests=digests)
    with pytest.raises(ArtifactIntegrityError, match="no recorded sha256"):
        verify_digests(folder, {})
