"""`maas task init`'s profiler: what it infers from a file, and the files it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maas.errors import DataError
from maas.pipeline.data.profile import TaskRequest, profile


def orders(n: int = 700) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "placed": pd.date_range("2024-01-01", periods=n, freq="3h").strftime("%Y-%m-%d %H:%M"),
            "shop": rng.choice(["x", "y"], n),
            "amount": rng.gamma(2, 20, n),
            "discount": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "returned": rng.choice([0, 1], n, p=[0.8, 0.2]),
            "days_late": rng.integers(-3, 10, n),
        }
    )


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def request(path: Path, **options: object) -> TaskRequest:
    settings: dict = {"label": "returned", "time": "placed", "exclude": ("order_id",)} | options
    return TaskRequest("orders", path, **settings)


def test_the_suite_and_features_come_from_the_data(tmp_path: Path) -> None:
    made = profile(request(write(tmp_path, orders()), keys=("order_id",)))
    task, notes = made.task, " ".join(made.notes)
    assert task["data"]["time"] == {"column": "placed", "partition": "week"}  # 12 weeks < 6 months
    assert task["data"]["label"]["positive"] == 1  # the rarer of two values, as a number
    assert "returned == '1' (the rarer value): check it" in notes
    validation, features = task["validation"], task["features"]
    assert validation["columns"]["order_id"] == "str" and validation["columns"]["amount"] == "float"
    assert validation["domains"] == {"shop": ["x", "y"]}
    amount = next(r for r in validation["ranges"] if r["column"] == "amount")
    assert amount["min"] == 0 and amount["severity"] == "warn"  # never negative: floor 0
    assert validation["unique_key"] == ["order_id"]
    bands = {(b["column"], b["stat"]): b for b in validation["distributions"]}
    mean, spread = bands[("amount", "mean")], bands[("amount", "stdev")]
    assert mean["min"] < 40 < mean["max"] and spread["min"] < 28 < spread["max"]  # gamma(2, 20)
    assert mean["severity"] == spread["severity"] == "warn"
    drift = validation["drift"]  # each week against the one before: every input but derived ones
    assert set(drift["thresholds"]) == {"shop", "amount", "discount", "days_late"}
    assert drift["severity"] == "warn" and all(t >= 0.1 for t in drift["thresholds"].values())
    assert "validation.drift" in notes
    assert 0 < validation["label_rate"]["min"] < validation["label_rate"]["max"] < 1
    assert features["categorical"] == ["shop", "placed_day_of_week"]
    assert features["numeric"] == {"amount": {}, "discount": {"optional": True}, "days_late": {}}
    assert "discount: " in notes and "optional in requests" in notes
    assert task["train"]["models_dir"] == "models/orders"
    label_rules = [r for r in validation["not_null"] if r["column"] == "returned"]
    assert [(r["mostly"], r["severity"]) for r in label_rules] == [(1.0, "warn")]  # dropped rows


def test_a_threshold_makes_a_numeric_label_binary(tmp_path: Path) -> None:
    path = write(tmp_path, orders())
    made = profile(request(path, label="days_late", threshold=5.0, partition="month"))
    assert made.task["data"]["label"]["threshold"] == 5.0
    assert made.task["data"]["time"]["partition"] == "month"


def test_multiclass_and_regression_labels(tmp_path: Path) -> None:
    from maas.config import LabelSpec

    path = write(tmp_path, orders())
    classes = profile(request(path, label="shop", kind="multiclass"))
    label = classes.task["data"]["label"]
    assert label == {
        "column": "shop",
        "kind": "multiclass",
        "unlabeled": "drop",
        "classes": ["x", "y"],
    }
    assert "label_rate" not in classes.task["validation"]
    assert "classes of shop: x " in " ".join(classes.notes)
    LabelSpec.model_validate(label)  # what it writes is a valid task label
    values = profile(request(path, label="amount", kind="regression"))
    assert values.task["data"]["label"] == {
        "column": "amount",
        "kind": "regression",
        "unlabeled": "drop",
    }
    rule = next(r for r in values.task["validation"]["ranges"] if r["column"] == "amount")
    assert rule["min"] == 0 and rule["severity"] == "warn"
    assert "amount" not in values.task["features"]["numeric"]  # the label is not an input


@pytest.mark.parametrize(
    ("frame", "options", "message"),
    [
        (orders().head(0), {}, "holds no rows"),
        (orders()[["placed"]], {}, "has 1 column"),
        (orders(), {"label": "refunded"}, r"no column\(s\) \['refunded'\]"),
        (orders().assign(placed="someday"), {}, "'placed' does not parse as dates"),
        (orders(), {"label": "days_late"}, "'days_late' has 13 values: give --positive"),
        (orders(), {"positive": "2"}, "positive value '2' is not in 'returned'"),
        (orders(), {"label": "shop", "threshold": 1.0}, "needs a numeric label"),
        (orders(), {"label": "shop", "kind": "regression"}, "'shop' is not numeric"),
        (orders(), {"label": "order_id", "kind": "multiclass"}, "700 values .over 50.: a number"),
        (orders(), {"kind": "multiclass", "positive": "1"}, "are for binary labels"),
        (orders(), {"kind": "ordinal"}, "one of binary, multiclass, regression"),
    ],
)
def test_bad_files_and_options_are_named(tmp_path: Path, frame, options, message) -> None:
    with pytest.raises(DataError, match=message):
        profile(request(write(tmp_path, frame), **options))


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="orders.parquet is unreadable"):
        profile(request(path))
