"""The baseline server: plain FastAPI + uvicorn around the same model object and schema.

Run by benchmarks/serving.py: `MAAS_MODEL_DIR=<BentoML model folder> uvicorn
benchmarks.fastapi_baseline:app`. The same generated pydantic models, featurizing and ONNX
Runtime session as the BentoML service; only the server differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from maas.serving.inference import OnnxModel, request_spec
from maas.serving.schema import build_schema

folder = Path(os.environ["MAAS_MODEL_DIR"])
info = json.loads((folder / "metadata.json").read_text())
model = OnnxModel.load(folder, expected_digests=info["sha256"])
version = str(info["model_version"])
SCHEMA = build_schema(request_spec(folder), 1000)
PredictRequest = SCHEMA.request
app = FastAPI()


@app.post("/predict", response_model=SCHEMA.response)
async def predict(request: PredictRequest) -> Any:  # type: ignore[valid-type]
    records = SCHEMA.records(request)
    return SCHEMA.to_response(version, *model.score(SCHEMA.to_columns(records)))
