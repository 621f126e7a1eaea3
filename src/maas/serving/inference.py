"""Scoring raw records with the serving artifacts: ONNX Runtime + the preprocessing JSON.

Imports numpy and onnxruntime only (no torch, mlflow, pandas): MLflow's pyfunc, the champion
re-scoring and the BentoML service all predict through this one path. `sha256_file` is the one
file digest of maas (partitions, serving artifacts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maas.serving.errors import ArtifactIntegrityError, FeatureError
from maas.serving.preprocessing import Preprocessor
from maas.serving.request import RequestSpec

ONNX_FILE = "model.onnx"
PREPROCESSING_FILE = "preprocessing.json"
MODEL_CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "weights.safetensors"
SERVING_FILES = (ONNX_FILE, PREPROCESSING_FILE, MODEL_CONFIG_FILE)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (partitions can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_digests(folder: Path, expected: Mapping[str, str]) -> dict[str, str]:
    """Check every serving file against its recorded sha256; returns the verified digests."""
    verified = {}
    for name in SERVING_FILES:
        want = expected.get(name)
        if not want:
            raise ArtifactIntegrityError(f"no recorded sha256 for {name}; refusing to load it")
        path = folder / name
        if not path.is_file():
            raise ArtifactIntegrityError(f"serving artifact {name} is missing from {folder}")
        got = sha256_file(path)
        if got != want:
            raise ArtifactIntegrityError(
                f"{name} sha256 {got} does not match the registered {want}: "
                "the artifact was modified"
            )
        verified[name] = got
    return verified


def output_difference(actual: Any, expected: Any, scale: float = 1.0) -> float:
    """max |actual - expected| / max(scale, |expected|): absolute (in units of `scale`) near
    zero, relative above it. Probabilities use scale 1; a regression's values the label's
    standard deviation, the unit the network computes in (float32 keeps ~7 digits: an income
    of 1e5 cannot match to 1e-5 absolutely, nor a value near 0 when the spread is 1e5). The
    ONNX parity check and infra-validation both compare outputs with it."""
    want = np.asarray(expected, dtype=np.float64)
    if not want.size:
        return 0.0
    got = np.asarray(actual, dtype=np.float64)
    floor = max(1.0, float(scale))
    return float(np.max(np.abs(got - want) / np.maximum(floor, np.abs(want))))


def create_session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def request_spec(folder: Path) -> RequestSpec:
    """The request spec in a folder of serving files (its preprocessing JSON)."""
    try:
        spec = Preprocessor.load(folder / PREPROCESSING_FILE).request
    except FeatureError as error:  # format 1: trained before the request came from the task
        raise ArtifactIntegrityError(
            f"{folder / PREPROCESSING_FILE}: {error}; the version was trained before task "
            "files: train it again (`maas run`) to package it with this maas"
        ) from None
    if spec is None:
        raise ArtifactIntegrityError(f"{folder / PREPROCESSING_FILE} holds no request spec")
    return spec


@dataclass
class OnnxModel:
    preprocessor: Preprocessor
    session: Any

    @classmethod
    def load(cls, folder: Path, expected_digests: Mapping[str, str] | None = None) -> OnnxModel:
        """Load from a folder of serving files, verifying digests when they are given."""
        if expected_digests is not None:
            verify_digests(folder, expected_digests)
        preprocessor = Preprocessor.from_dict(json.loads((folder / PREPROCESSING_FILE).read_text()))
        return cls(preprocessor, create_session(folder / ONNX_FILE))

    def predict(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The model's output for each row of raw columns, in one vectorized call: binary, the
        positive class's probability (n,); multiclass, each class's probability (n, classes);
        regression, the value (n,)."""
        return self.score(columns)[0]

    def score(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, list[list[str]]]:
        """(the model's output, the fields with a value unknown to the model) for each row."""
        cat, num, absent = self.preprocessor.encode(columns)
        if len(cat) == 0:
            width = self.session.get_outputs()[0].shape[1:]  # (batch,) or (batch, classes)
            return np.zeros((0, *width), dtype=np.float32), []
        outputs = self.session.run(None, {"categorical": cat, "numeric": num})[0]
        return outputs, self.preprocessor.unknown_inputs(cat, absent)
