"""Session set-up (analytics off, a private BentoML store) and the shared parameter fixtures."""

from __future__ import annotations

import os
import tempfile

import pytest

from maas.config import Params, load_params
from tests.helpers import ROOT

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# BentoML reads its home once, at import: every test uses a private model/bento store.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="maas-test-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def small_params() -> Params:
    """The repo's params with bands sized for a few hundred synthetic rows."""
    return load_params(
        ROOT / "params.yaml",
        [
            "validation.row_count.min=100",
            "validation.row_count.max=100000",
            "validation.label_rate.min=0.05",
            "validation.label_rate.max=0.95",
            "features.min_frequency=1",
            "train.max_epochs=3",
            "train.batch_size=64",
            "train.device=cpu",
        ],
    )
