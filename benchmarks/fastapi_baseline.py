"""The baseline server: plain FastAPI + uvicorn around the same model object and schema.

Run by benchmarks/serving.py: `MAAS_MODEL_DIR=<BentoML model folder> uvicorn
benchmarks.fastapi_baseline:app`. Same Flight pydantic model, same featurizing, same ONNX
Runtime session as the BentoML service; only the server differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, Field

from maas.serving.inference import OnnxModel
from maas.serving.schema import Flight, PredictResponse, to_columns, to_response

folder = Path(os.environ["MAAS_MODEL_DIR"])
info = json.loads((folder / "metadata.json").read_text())
model = OnnxModel.load(folder, expected_digests=info["sha256"])
version = str(info["model_version"])
app = FastAPI()


class PredictRequest(BaseModel):
    flights: Annotated[list[Flight], Field(min_length=1, max_length=1000)]


@app.post("/predict")
async def predict(request: PredictRequest) -> PredictResponse:
    return to_response(version, *model.score(to_columns(request.flights)))
