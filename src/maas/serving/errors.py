"""Errors of the serving path, in one tree (the serving package imports nothing from the rest
of maas, so it keeps its own root; the service turns them into 4xx/5xx answers):

    ServingError               a model cannot be loaded or a record cannot be scored
    ├── ArtifactIntegrityError a serving artifact's sha256 differs from the registered digest
    └── FeatureError           input cannot be featurized (also a ValueError)
"""

from __future__ import annotations


class ServingError(RuntimeError):
    """A model cannot be loaded or a record cannot be scored; the message says which and why."""


class ArtifactIntegrityError(ServingError):
    """A serving artifact's sha256 differs from the digest recorded at registration."""


class FeatureError(ServingError, ValueError):
    """Input cannot be featurized; the message names the column."""
