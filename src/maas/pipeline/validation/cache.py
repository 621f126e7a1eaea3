"""Validation outcomes kept per partition: a partition validated once with the same suite is
not validated again (its bytes and the suite decide the outcome, nothing else)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from maas.config import DataParams, ValidationParams
from maas.files import write_text_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: the partition check reads the task's time and frequency


def suite_digest(params: ValidationParams, data: DataParams) -> str:
    """What a partition's outcomes depend on besides its bytes: the suite's settings, the
    task's label rule and time, the Great Expectations release and this module's format."""
    from importlib.metadata import version

    # validation.drift's outcomes are keyed by its own settings (validation_drift): changing a
    # threshold does not validate every partition again; the engine counts (a type check's
    # observed value is its own), not where Spark runs
    exclude = {"reports_dir", "cache_dir", "drift", "spark_master"}
    settings = params.model_dump(mode="json", exclude=exclude)
    task = data.model_dump(mode="json", include={"label", "time"})
    text = json.dumps([settings, task, version("great_expectations"), CACHE_FORMAT], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ValidationCache:
    """Entries under `params.cache_dir`, keyed by partition, file sha256 and suite digest."""

    def __init__(
        self, params: ValidationParams, data: DataParams, content_sha256: dict[str, str]
    ) -> None:
        if params.cache_dir is None:
            raise ValueError("validation.cache_dir is null: no cache")
        self.folder = params.cache_dir
        self.suite = suite_digest(params, data)
        self.content_sha256 = content_sha256

    def path(self, partition: str) -> Path | None:
        sha = self.content_sha256.get(partition)
        if sha is None:
            return None
        return self.folder / f"{partition}-{sha[:16]}-{self.suite[:16]}.json"

    def get(self, partition: str) -> tuple[list[dict[str, Any]], Any] | None:
        """(outcomes as dicts, the raw GX result), or None when not validated before."""
        path = self.path(partition)
        if path is None:
            return None
        try:
            stored = json.loads(path.read_text())
            return list(stored["outcomes"]), stored["result"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:  # torn or foreign: validate
            log.warning("ignoring validation cache entry %s: %s", path, error)
            return None

    def put(self, partition: str, outcomes: list[dict[str, Any]], result: Any) -> None:
        path = self.path(partition)
        if path is None:
            return
        try:
            text = json.dumps({"outcomes": outcomes, "result": result}, default=str)
            write_text_atomic(path, text)
        except OSError as error:  # a cache that cannot be written only costs time next run
            log.warning("validation cache not written (%s): %s", path, error)
