"""Shared test helpers: tiny in-memory flight partitions shaped like the real ones, and a tiny
model's serving files. Imported by tests; fixtures live in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pytest

from maas.config import Params, RegistryParams

ROOT = Path(__file__).resolve().parents[1]
# The parts of the machine some tests need; a missing one fails those tests, naming it, unless
# the user opts out of it by name: MAAS_TEST_WITHOUT=containers,postgres,haproxy,tmpfs,wrk,
# prometheus,netns.
PARTS = ("containers", "postgres", "haproxy", "tmpfs", "wrk", "prometheus", "netns")


def missing(part: str, problem: str) -> NoReturn:
    """The one rule for a part of the machine that is not there: a loud failure that says how
    to get it, or a skip where the user said to run without it."""
    assert part in PARTS, part
    without = {name.strip() for name in os.environ.get("MAAS_TEST_WITHOUT", "").split(",")}
    if part in without:
        pytest.skip(f"{problem} (MAAS_TEST_WITHOUT={part})")
    pytest.fail(
        f"{problem}: install it (`make system` installs the container tools, HAProxy and wrk), or "
        f"run the suite without it: MAAS_TEST_WITHOUT={part}"
    )


# The flight-delay task's request fields (tasks/flight-delay.yaml): what is known at scheduling
# time, and the origin's weather (optional).
RECORD_FIELDS = ("carrier", "origin", "dest", "sched_dep_time", "sched_arr_time", "distance")
WEATHER_FIELDS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)

CARRIERS = ["9E", "AA", "B6", "DL", "EV", "UA"]
ORIGINS = ["EWR", "JFK", "LGA"]
DESTS = ["ATL", "BOS", "ORD", "LAX", "MIA", "SFO"]


def make_sales(n: int = 1200, seed: int = 0, nulls: int = 0) -> pd.DataFrame:
    """Daily sales of 2013 with the date written as yyyymmdd integers (the first `nulls` rows
    without one: a CSV column with blanks, read back as floats): units from price and store."""
    rng = np.random.default_rng(seed)
    days = pd.Timestamp(2013, 1, 1) + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    frame = pd.DataFrame(
        {
            "date": days.strftime("%Y%m%d").astype(int),
            "store": rng.choice(["a", "b", "c"], n),
            "price": rng.uniform(1, 10, n).round(2),
        }
    )
    lift = frame["store"].map({"a": 0.0, "b": 3.0, "c": -2.0})
    frame["units"] = (20 - 1.5 * frame["price"] + lift + rng.normal(0, 1, n)).round(2)
    if nulls:
        frame.loc[: nulls - 1, "date"] = None
    return frame


def make_flights(n: int = 300, year: int = 2013, month: int = 1, seed: int = 0) -> pd.DataFrame:
    """Synthetic flights with every raw column; delays depend on hour and precipitation."""
    rng = np.random.default_rng(seed)
    dep = rng.integers(5, 23, n) * 100 + rng.integers(0, 60, n)
    precip = np.where(rng.random(n) < 0.2, rng.random(n), 0.0)
    risk = -2.0 + 0.08 * (dep // 100) + 2.5 * precip
    delayed = rng.random(n) < 1 / (1 + np.exp(-risk))
    arr_delay = np.where(delayed, rng.integers(15, 200, n), rng.integers(-30, 14, n)).astype(float)
    frame = pd.DataFrame(
        {
            "year": np.full(n, year),
            "month": np.full(n, month),
            "day": rng.integers(1, 28, n),
            "dep_time": dep.astype(float),
            "sched_dep_time": dep,
            "dep_delay": rng.normal(5, 10, n),
            "arr_time": ((dep + 200) % 2400).astype(float),
            "sched_arr_time": (dep + 200) % 2400,
            "arr_delay": arr_delay,
            "carrier": rng.choice(CARRIERS, n),
            "flight": np.arange(n) + 1,
            "tailnum": [f"N{i:05d}" for i in range(n)],
            "origin": rng.choice(ORIGINS, n),
            "dest": rng.choice(DESTS, n),
            "air_time": rng.normal(120, 30, n),
            "distance": rng.integers(100, 2500, n),
            "hour": dep // 100,
            "minute": dep % 100,
            "time_hour": [f"{year}-{month:02d}-01T{h:02d}:00:00Z" for h in (dep // 100) % 24],
            "temp": rng.normal(55, 9, n),  # °F, a month's spread
            "dewp": rng.normal(35, 10, n),
            "humid": rng.uniform(20, 100, n),
            "wind_dir": rng.uniform(0, 360, n),
            "wind_speed": rng.uniform(0, 25, n),
            "wind_gust": np.where(rng.random(n) < 0.8, np.nan, 30.0),
            "precip": precip,
            "pressure": rng.normal(1015, 8, n),
            "visib": rng.uniform(1, 10, n),
        }
    )
    for column in ("carrier", "origin", "dest", "tailnum", "time_hour"):
        frame[column] = frame[column].astype("str")
    return frame


def write_flight_windows(
    data: Any, train_rows: int = 400, test_rows: int = 200
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Windows as the validate stage writes them into `data.processed_dir`: synthetic flights
    of 2013-10 and 2013-11 (`train_rows` each) for training, 2013-12 (`test_rows`) for test,
    labeled by `data.label`; returns (train, test)."""
    from maas.pipeline.data.partitions import add_label
    from maas.pipeline.data.windows import write_windows

    months = [
        make_flights(train_rows, month=m, seed=m).assign(partition=f"2013-{m:02d}")
        for m in (10, 11)
    ]
    train = add_label(pd.concat(months, ignore_index=True), data.label)
    test = add_label(
        make_flights(test_rows, month=12, seed=12).assign(partition="2013-12"), data.label
    )
    lineage = {
        "train_partitions": {"2013-10": "a", "2013-11": "b"},
        "test_partitions": {"2013-12": "c"},
        "validation_status": "passed",
    }
    write_windows(data, train, test, lineage)
    return train, test


def fit_flights(
    frame: pd.DataFrame, params: Params, min_frequency: int = 1, request: bool = False
) -> Any:
    """The task's preprocessing fitted on `frame` (every category kept by default), with the
    request spec when asked."""
    from dataclasses import replace

    from maas.pipeline.training.request_spec import build_request_spec
    from maas.serving.preprocessing import fit_preprocessor

    features = params.features
    derived = {name: (d.source, d.transform) for name, d in features.derived.items()}
    pre = fit_preprocessor(frame, features.categorical, features.numeric, min_frequency, derived)
    if request:
        pre = replace(pre, request=build_request_spec(params.request, pre, frame))
    return pre


def write_tiny_model(folder: Path, params: Params, frame: pd.DataFrame) -> Path:
    """An untrained (seeded) model's serving files + weights, as the train stage writes them."""
    import torch

    from maas.pipeline.training.export import export_onnx, save_weights
    from maas.pipeline.training.model import TabularNet, build_model_config
    from maas.serving.inference import (
        MODEL_CONFIG_FILE,
        ONNX_FILE,
        PREPROCESSING_FILE,
        WEIGHTS_FILE,
    )

    folder.mkdir(parents=True, exist_ok=True)
    pre = fit_flights(frame, params, request=True)
    cat, num = pre.transform(frame)
    config = build_model_config(pre.cardinalities, num.shape[1], [8], 0.0, 4)
    torch.manual_seed(0)
    model = TabularNet(config).eval()
    export_onnx(model, folder / ONNX_FILE, cat, num)
    pre.save(folder / PREPROCESSING_FILE)
    config.save(folder / MODEL_CONFIG_FILE)
    save_weights(model, folder / WEIGHTS_FILE)
    return folder


def register_tiny(
    registry: RegistryParams, models: Path, frame: pd.DataFrame, tags: dict[str, str]
) -> tuple[Any, Any, Any]:
    """A tiny model's serving files registered as the register stage does, with `tags`:
    (client, the run's tracking, the model version). No verdict is signed here."""
    from maas.pipeline.register import serving_requirements
    from maas.tracking.registry import register_version
    from maas.tracking.runs import start_pipeline_run
    from maas.tracking.store import connect

    client = connect(registry)
    tracking = start_pipeline_run(registry, {"p": 1}, "digest")
    version = register_version(
        client,
        registry,
        tracking.run_id,
        models,
        tags,
        frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].head(20),
        serving_requirements(),
    )
    return client, tracking, version


def signed_champion(tmp_path: Path, small_params: Params, name: str) -> tuple[Any, ...]:
    """A project whose tiny model `name` v1 is registered, signed with the project's key and
    made champion, as the register stage does it: (params, client, "1", frame, models)."""
    from maas.config import load_params
    from maas.tracking.keyring import load_key
    from maas.tracking.registry import CHAMPION, set_alias
    from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict

    params = load_params(
        ROOT / "params.yaml",
        [
            f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"registry.artifact_root={tmp_path / 'artifacts'}",
            f"registry.model_name={name}",
            f"registry.experiment={name}",
            f"promotion.verdict_key_file={tmp_path / 'gate.key'}",
        ],
    )
    frame = make_flights(300, month=12, seed=3)
    models = write_tiny_model(tmp_path / "models", small_params, frame)
    client, tracking, version = register_tiny(
        params.registry, models, frame, {"gate_passed": "true"}
    )
    key = load_key(params.promotion.verdict_key_file, create=True)
    number = str(version.version)
    signature = sign_verdict(key, name, number, tracking.run_id, dict(version.tags))
    client.set_model_version_tag(name, number, SIGNATURE_TAG, signature)
    set_alias(client, name, CHAMPION, number)
    return params, client, number, frame, models
