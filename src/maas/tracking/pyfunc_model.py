"""MLflow models-from-code definition: `mlflow.pyfunc.load_model` predicts from raw records.

MLflow stores this file as source, not a pickle. It scores through the same ONNX graph and
preprocessing JSON as the service, after verifying their sha256 digests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class TaskModel(PythonModel):
    """Predicts a frame of raw records; the output columns are the service's, named by the
    task: binary, the positive class's probability and the decision at the threshold;
    multiclass, the predicted class and one probability column per class
    (`<probabilities>_<class>`); regression, the value."""

    def load_context(self, context: Any) -> None:
        from maas.serving.inference import ONNX_FILE, OnnxModel

        config = context.model_config or {}
        folder = Path(context.artifacts[ONNX_FILE]).parent
        self.threshold = float(config.get("threshold", 0.5))
        self.model = OnnxModel.load(folder, expected_digests=config.get("sha256"))
        request = self.model.preprocessor.request
        if request is None:  # trained before task files: packaged with its recorded code
            raise ValueError("the model's preprocessing carries no request spec")
        self.request = request

    # model_input is left unannotated: MLflow reads the hint as a schema and warns on `Any`.
    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        outputs = self.model.predict(frame)
        request = self.request
        if request.kind == "multiclass":
            probabilities, predicted = request.output_fields
            columns = {predicted: np.asarray(request.classes)[outputs.argmax(axis=1)]}
            columns |= {
                f"{probabilities}_{c}": outputs[:, i] for i, c in enumerate(request.classes)
            }
            return pd.DataFrame(columns)
        if request.kind == "regression":
            return pd.DataFrame({request.output_fields[0]: outputs})
        return pd.DataFrame(
            {request.probability: outputs, request.decision: outputs >= self.threshold}
        )


mlflow.models.set_model(TaskModel())
