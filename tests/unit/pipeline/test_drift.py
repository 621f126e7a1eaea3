"""Drift by Evidently on synthetic rows: a shift is found, the same distribution is not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from maas.pipeline.data.shift import compare, write_report


def _rows(rng: np.random.Generator, n: int, temp_mean: float, carriers: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "temp": rng.normal(temp_mean, 10, n),
            "distance": rng.integers(100, 3000, n),
            "carrier": rng.choice(list(carriers), n),
            "wind_gust": np.full(n, np.nan),  # empty: not tested, named
            "p": rng.uniform(0, 1, n),
        }
    )


def test_a_shifted_period_drifts_and_an_unshifted_one_does_not(tmp_path) -> None:
    rng = np.random.default_rng(7)
    reference = _rows(rng, 3000, 40.0, "ABC")
    same = _rows(rng, 2000, 40.0, "ABC")
    summer = _rows(rng, 2000, 75.0, "ABBBBC")  # July against a January-June window
    numeric, categorical = ["temp", "distance", "wind_gust"], ["carrier"]

    calm = compare(reference, same, numeric, categorical, prediction="p")
    assert calm.drifted == [] and calm.share == 0.0
    assert calm.skipped == {"wind_gust": "empty in the reference"}
    assert calm.prediction is not None and calm.prediction["drifted"] is False

    shifted = compare(reference, summer, numeric, categorical, prediction="p")
    assert shifted.drifted == ["temp", "carrier"]
    assert shifted.share == 2 / 3  # of the three tested inputs; the prediction is not counted
    assert shifted.columns["temp"]["method"]  # Evidently chose the test by type and size
    assert shifted.columns["distance"]["drifted"] is False
    assert shifted.rows == (3000, 2000)

    paths = write_report(shifted, tmp_path, "2013-07-served")
    assert paths[0].read_text().lstrip().startswith("<!DOCTYPE html>")
    assert "DriftedColumnsCount" in paths[1].read_text()
