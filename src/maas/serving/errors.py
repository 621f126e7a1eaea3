"""Errors of the serving path (the serving package imports nothing from the rest of maas)."""

from __future__ import annotations


class ServingError(RuntimeError):
    """A model cannot be loaded or a record cannot be scored; the message says which and why."""


class ArtifactIntegrityError(ServingError):
    """A serving artifact's sha256 differs from the digest recorded at registration."""


class FeatureError(ServingError, ValueError):
    """Input cannot be featurized; the message names the column."""
