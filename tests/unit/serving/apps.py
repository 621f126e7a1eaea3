"""Helpers of the service tests: a tiny flight model registered and stored as a BentoML model,
and the service module (the real BentoML service, its ASGI guard and fast path) loaded for any
such model, so a test can send HTTP requests to the app a container would run."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from maas.config import Params, RegistryParams
from maas.release.bento import create_bento_model
from maas.serving.inference import PREPROCESSING_FILE
from tests.helpers import (
    RECORD_FIELDS,
    WEATHER_FIELDS,
    make_flights,
    register_tiny,
    write_tiny_model,
)

MODEL = "flight-delay"  # the service's default Bento argument is flight-delay:latest
SpecEdit = Callable[[dict[str, Any]], None]  # changes a saved request spec in place


def package_flights(
    root: Path, params: Params, model: str, edit_request: SpecEdit | None = None
) -> tuple[RegistryParams, Any, Any, str, Any]:
    """A registered version of `model` whose serving files are a BentoML model in the test
    store: (registry, client, version, BentoML tag, the records it was trained on)."""
    registry = RegistryParams(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=root / "artifacts",
        experiment="service",
        model_name=model,
    )
    frame = make_flights(300, month=12, seed=3)
    models = write_tiny_model(root / "models", params, frame)
    if edit_request is not None:  # before registration: the digests are of the edited file
        saved = json.loads((models / PREPROCESSING_FILE).read_text())
        edit_request(saved["request"])
        (models / PREPROCESSING_FILE).write_text(json.dumps(saved))
    records = frame[[*RECORD_FIELDS, *WEATHER_FIELDS]]
    tags = {"git_commit": "abc123", "test_roc_auc": "0.7", "test_partitions": '{"2013-12": "x"}'}
    client, _, version = register_tiny(registry, models, frame, tags)
    tag = create_bento_model(client, registry, version)
    return registry, client, version, tag, records


def load_service(tag: str, name: str) -> ModuleType:
    """`maas.serving.service` imported once more, under `name`, with the Bento argument
    `model_tag=tag` (as `bentoml serve --arg model_tag=...` gives it): the service of another
    model beside the default one, without /metrics."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    found = importlib.util.find_spec("maas.serving.service")
    assert found is not None and found.origin is not None
    spec = importlib.util.spec_from_file_location(name, found.origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = BentoMLContainer.bento_arguments.get()
    # Prometheus metrics off: they are the process's, and the default service's app has them
    BentoMLContainer.bento_arguments.set({"model_tag": tag, "metrics": False})
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        BentoMLContainer.bento_arguments.set(saved)
    return module


_APPS: dict[str, Any] = {}


def asgi_app(service: ModuleType) -> Any:
    """The service module's ASGI app, as `bentoml serve` builds it: once per process (its
    Prometheus metrics are registered once), started and stopped by each `TestClient`."""
    if service.__name__ not in _APPS:
        _APPS[service.__name__] = service.ModelService.to_asgi()
    return _APPS[service.__name__]


def records_of(frame: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows
