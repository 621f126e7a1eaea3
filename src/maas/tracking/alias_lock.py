"""Moves of `champion` made by maas, one at a time: the compare-and-set MLflow lacks.

MLflow sets an alias unconditionally, so "read the champion, decide, set the alias" lets a
`maas promote` that lands between the read and the set be overwritten by a training run's
gate. Every maas move of `champion` (the register stage's promotion, `maas promote`,
`maas rollback`, `maas undeploy`) holds this lock from the read to the set: per registry and
model, across processes of this host (fcntl), in a private folder (mode 0700) of the user's
maas cache. A move on another host or in the MLflow UI does not take it; the register stage
still checks the champion right before setting the alias, which leaves a window of one
registry round trip for those (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from maas.files import cache_home, locked


def lock_folder() -> Path:
    folder = cache_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


@contextlib.contextmanager
def champion_lock(registry_uri: str, model: str) -> Iterator[None]:
    """Held while one maas process reads `champion` and moves it."""
    key = hashlib.sha256(f"{registry_uri}\0{model}".encode()).hexdigest()[:24]
    with locked(lock_folder() / f"champion-{key}.lock"):
        yield
