"""Drift between a reference and a current set of rows, by Evidently: the monitoring flow's
(a period's served records or a newly arrived partition against the champion's training
window) and validation's (each partition against the one before it). Evidently's
DataDriftPreset picks each column's test by type and size (K-S or Wasserstein for numbers,
chi-square or Jensen-Shannon for categories) unless methods and thresholds are given, and its
tests say which columns drifted. Nothing here computes a statistic itself."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class Drift:
    columns: dict[str, dict[str, Any]]  # column: {method, score, threshold, drifted}
    share: float  # drifted input columns / input columns tested
    drifted: list[str]
    prediction: dict[str, Any] | None = None  # the output column's own test, when given
    skipped: dict[str, str] = field(default_factory=dict)  # column: why it was not tested
    rows: tuple[int, int] = (0, 0)  # (reference, current)
    html: str = ""  # Evidently's report
    json: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "drifted": self.drifted,
            "prediction": self.prediction,
            "skipped": self.skipped,
            "rows": list(self.rows),
        }


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    prediction: str | None = None,
    drift_share: float = 0.5,
    methods: tuple[str | None, str | None] = (None, None),
    thresholds: dict[str, float] | None = None,
) -> Drift:
    """Evidently's drift tests of `current` against `reference` over the input columns, and of
    the `prediction` column (not counted in the share). A column empty on either side is not
    tested (it is named in `skipped`). `methods` (numbers, categories) and per-column
    `thresholds` replace Evidently's choice."""
    evidently = _evidently()
    ref, cur, skipped = _columns(reference, current, numeric, categorical, prediction)
    inputs = [c for c in [*numeric, *categorical] if c not in skipped]
    if not inputs:
        raise ValueError(f"no input column can be compared: {skipped}")
    numbers = [c for c in [*numeric, prediction] if c and c in ref.columns and c not in categorical]
    definition = evidently.DataDefinition(
        numerical_columns=numbers,
        categorical_columns=[
            c for c in [*categorical, prediction] if c and c not in numbers and c in ref.columns
        ],
    )
    metrics: list[Any] = [
        evidently.DataDriftPreset(
            columns=inputs,
            drift_share=drift_share,
            num_method=methods[0],
            cat_method=methods[1],
            per_column_threshold={c: t for c, t in (thresholds or {}).items() if c in inputs}
            or None,
        )
    ]
    if prediction and prediction in ref.columns:
        metrics.append(evidently.ValueDrift(column=prediction))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside Evidently
        snapshot = evidently.Report(metrics, include_tests=True).run(
            current_data=evidently.Dataset.from_pandas(cur, data_definition=definition),
            reference_data=evidently.Dataset.from_pandas(ref, data_definition=definition),
        )
    columns = _column_results(snapshot.dict())
    drifted = [c for c in inputs if columns.get(c, {}).get("drifted")]
    return Drift(
        columns={c: v for c, v in columns.items() if c in inputs},
        share=len(drifted) / len(inputs),
        drifted=drifted,
        prediction=columns.get(prediction) if prediction else None,
        skipped=skipped,
        rows=(len(ref), len(cur)),
        html=snapshot.get_html_str(as_iframe=False),
        json=snapshot.json(),
    )


def _columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    prediction: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Both sides with the same typed columns: numbers as float, categories as strings."""
    skipped: dict[str, str] = {}
    ref, cur = pd.DataFrame(index=reference.index), pd.DataFrame(index=current.index)
    wanted = [*numeric, *categorical, *([prediction] if prediction else [])]
    for column in wanted:
        if column not in reference.columns or column not in current.columns:
            side = "reference" if column not in reference.columns else "current rows"
            skipped[column] = f"not in the {side}"
            continue
        if column in categorical:
            a, b = _strings(reference[column]), _strings(current[column])
        else:
            a, b = _floats(reference[column]), _floats(current[column])
        if a.notna().sum() == 0 or b.notna().sum() == 0:
            skipped[column] = "empty in the " + (
                "reference" if a.notna().sum() == 0 else "current rows"
            )
            continue
        ref[column], cur[column] = a, b
    return ref, cur, skipped


def _floats(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _strings(values: pd.Series) -> pd.Series:
    return (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v))
    )


def _column_results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tested column's method, score, threshold and verdict, from the report's
    ValueDrift metrics and their tests."""
    scores: dict[str, dict[str, Any]] = {}
    by_id: dict[str, str] = {}
    for metric in report.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = {
                "method": config.get("method"),
                "score": float(metric["value"]),
                "threshold": config.get("threshold"),
            }
            by_id[metric["id"]] = config["column"]
    for test in report.get("tests", []):
        column = by_id.get(test.get("metric_config", {}).get("metric_id", ""))
        if column is not None:
            scores[column]["drifted"] = test.get("status") == "FAIL"
    return scores


def write_report(drift: Drift, folder: Path, name: str) -> list[Path]:
    """Evidently's HTML and JSON, and maas's summary, as files (for MLflow and Prefect)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.html", folder / f"{name}.json", folder / f"{name}-summary.json"]
    paths[0].write_text(drift.html)
    paths[1].write_text(drift.json)
    paths[2].write_text(json.dumps({**drift.summary(), "columns": drift.columns}, indent=2))
    return paths


def _evidently() -> Any:
    """Evidently's API. Its 0.7 line imports `infer_dtype_from_object` from pandas, which pandas
    3 removed; only Evidently's legacy column-type test uses it (not called here), so a stub
    that refuses lets the rest import on the pandas this project runs."""
    import types

    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):

        def _removed(*_: Any, **__: Any) -> Any:
            raise NotImplementedError("removed in pandas 3")

        pandas_common.infer_dtype_from_object = _removed
    import evidently
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    return types.SimpleNamespace(
        Report=evidently.Report,
        Dataset=evidently.Dataset,
        DataDefinition=evidently.DataDefinition,
        DataDriftPreset=DataDriftPreset,
        ValueDrift=ValueDrift,
    )
