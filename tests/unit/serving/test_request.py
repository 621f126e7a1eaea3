"""The request of a task's service, generated from its spec; the derived-feature vocabulary."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from maas.config import RequestParams
from maas.pipeline.training.request_spec import build_request_spec
from maas.serving.derive import derive
from maas.serving.errors import FeatureError
from maas.serving.inference import OnnxModel
from maas.serving.preprocessing import Preprocessor, fit_preprocessor
from maas.serving.schema import build_schema


def rentals(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "picked_up": pd.date_range("2024-01-01", periods=n, freq="7h").strftime(
                "%Y-%m-%dT%H:%M"
            ),
            "station": rng.choice(["A", "B"], n),
            "bikes": rng.integers(0, 30, n),
            "rain_mm": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        }
    )


def fitted(frame: pd.DataFrame) -> Preprocessor:
    numeric = {"bikes": None, "rain_mm": type("B", (), {"optional": True})()}
    derived = {"hour": ("picked_up", "hour"), "dow_sin": ("picked_up", "day_of_week_sin")}
    return fit_preprocessor(frame, ["station", "hour"], {**numeric, "dow_sin": None}, 1, derived)


REQUEST = RequestParams(
    kind="binary",
    body_key="rentals",
    outputs={"probability": "p_late", "decision": "late"},
    types={"bikes": "int", "station": "str", "picked_up": "str", "rain_mm": "float"},
    bounds={"bikes": (0, 100)},
)


def test_the_spec_is_the_raw_fields_the_features_read() -> None:
    frame = rentals()
    spec = build_request_spec(REQUEST, fitted(frame), frame)
    assert spec.names == ["station", "picked_up", "bikes", "rain_mm"]
    by_name = {f.name: f for f in spec.fields}
    assert (by_name["bikes"].type, by_name["bikes"].min, by_name["bikes"].max) == ("int", 0, 100)
    assert by_name["rain_mm"].optional and not by_name["bikes"].optional
    assert by_name["picked_up"].type == "datetime"  # read by date transforms
    assert spec.example["rain_mm"] is not None  # a complete record: every field present
    again = Preprocessor.from_dict(replace(fitted(frame), request=spec).to_dict())
    assert again.request == spec  # saved with the preprocessing JSON


def test_the_generated_models_carry_the_tasks_names_types_and_bounds() -> None:
    frame = rentals()
    schema = build_schema(build_request_spec(REQUEST, fitted(frame), frame), max_records=3)
    good = {"station": "A", "picked_up": "2024-02-01T08:00", "bikes": 3}
    request = schema.request.model_validate({"rentals": [good, {**good, "rain_mm": None}]})
    assert len(schema.records(request)) == 2
    for when in ("2024-02-01", "2024-02-01 08:00:00.5Z", "2024-02-01T08:00:00+01:00"):
        schema.request.model_validate({"rentals": [{**good, "picked_up": when}]})
    bad_records = [
        ({**good, "bikes": 101}, "bikes"),
        ({**good, "bikes": "3"}, "bikes"),
        ({**good, "station": ""}, "station"),
        ({"bikes": 1}, "station"),
        ({**good, "picked_up": "soon"}, "picked_up"),
        ({**good, "picked_up": "2024-13-01"}, "picked_up"),
    ]
    for bad, field in bad_records:
        with pytest.raises(ValidationError, match=field):
            schema.request.model_validate({"rentals": [bad]})
    with pytest.raises(ValidationError, match="rentals"):
        schema.request.model_validate({"records": [good]})
    with pytest.raises(ValidationError, match="at most 3"):
        schema.request.model_validate({"rentals": [good] * 4})
    response = schema.to_response("7", np.array([0.2, 0.9]), [[], ["station"]])
    assert response.model_dump()["predictions"][1] == {
        "p_late": 0.9,
        "late": True,
        "unknown_inputs": ["station"],
    }


def test_derived_features_of_dates_and_clock_times() -> None:
    times = np.array(["2024-01-01T06:30:00Z", "2024-03-10T23:00", None, "2023-12-31"], dtype=object)
    assert derive(times, "hour", "t")[:2].tolist() == [6.0, 23.0]
    assert derive(times, "day_of_week", "t")[[0, 1, 3]].tolist() == [0.0, 6.0, 6.0]
    assert derive(times, "day_of_year", "t")[[1, 3]].tolist() == [70.0, 365.0]
    assert derive(times, "month", "t")[1] == 3.0 and np.isnan(derive(times, "month", "t")[2])
    assert derive(times, "day_of_month", "t")[1] == 10.0
    sin, cos = derive(times, "hour_sin", "t"), derive(times, "hour_cos", "t")
    assert np.allclose(sin[:2] ** 2 + cos[:2] ** 2, 1.0)
    offset = np.array(["2024-01-01T01:30:00+02:00"], dtype=object)
    assert derive(offset, "hour", "t")[0] == 23.0  # read as UTC: the previous day, 23:30
    assert derive(np.array([1730, 5]), "hhmm_minutes", "c").tolist() == [1050, 5]
    assert derive(np.array([1730.0, np.nan]), "hhmm_hour", "c")[0] == 17.0
    # no date (a request cannot send one: the schema's pattern) scores as missing
    assert np.isnan(derive(np.array(["soon", "2023-02-29"], dtype=object), "hour", "t")).all()
    with pytest.raises(FeatureError, match="unknown derived feature transform 'weekday'"):
        derive(times, "weekday", "t")


class _Session:
    """An ONNX session's stand-in: one output of zeros per row."""

    def run(self, names: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.zeros(len(feeds["categorical"]), dtype=np.float32)]


def test_each_unknown_input_is_named_once_and_a_date_that_is_none_is_refused() -> None:
    """Two categorical features read one date: a date whose hour and weekday training never
    saw is one unknown input (it was `["picked_up", "picked_up"]`); a missing date, or one
    that is no date (scored as missing), is not a value the model never saw. The request
    refuses a date that is no date, naming the field, as validation blocks one in training."""
    days = pd.bdate_range("2024-01-01", periods=40) + pd.Timedelta(hours=8)  # weekdays, 08:00
    frame = pd.DataFrame(
        {"picked_up": days.strftime("%Y-%m-%dT%H:%M"), "station": ["A", "B"] * 20, "bikes": 3}
    )
    derived = {"hour": ("picked_up", "hour"), "weekday": ("picked_up", "day_of_week")}
    pre = fit_preprocessor(frame, ["station", "hour", "weekday"], {"bikes": None}, 1, derived)
    model = OnnxModel(pre, _Session())
    when = ["2024-03-04T08:00", "2024-03-04T08:00", "2024-03-09T10:00", None, "2024-02-30T08:00"]
    columns = {"station": ["A", "Z", "A", "A", "A"], "picked_up": when, "bikes": [3] * 5}
    assert model.score(columns)[1] == [[], ["station"], ["picked_up"], [], []]

    schema = build_schema(build_request_spec(REQUEST, pre, frame), max_records=3)
    good = {"station": "A", "picked_up": "2024-03-04T08:00", "bikes": 3}
    for day in ("2024-02-29", "2000-02-29T08:00", "0400-02-29", "2023-12-31 23:59:59.5Z"):
        schema.request.model_validate({"rentals": [{**good, "picked_up": day}]})
    for day in ("2023-02-29", "2100-02-29", "2024-02-30T08:00", "2024-04-31", "2024-06-31"):
        with pytest.raises(ValidationError, match="picked_up"):
            schema.request.model_validate({"rentals": [{**good, "picked_up": day}]})
