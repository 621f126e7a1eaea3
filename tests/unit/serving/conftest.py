"""Fixtures of the service tests: the flight-delay version the default service module serves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.serving.apps import MODEL, package_flights


@pytest.fixture(scope="package")
def packaged(tmp_path_factory: pytest.TempPathFactory, params: Any) -> Any:
    """A registered version whose serving files are a BentoML model in the test store."""
    return package_flights(tmp_path_factory.mktemp("service"), params, MODEL)


@pytest.fixture(scope="package")
def module(packaged: Any) -> Any:
    """maas.serving.service, imported now that flight-delay:latest exists."""
    from maas.serving import service

    return service
