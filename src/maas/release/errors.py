"""Errors of the release steps (container tools have their own: `containers.ContainerError`)."""

from __future__ import annotations

from maas.errors import MaasError


class PackagingError(MaasError):
    """A version cannot be packaged; the message says which and why."""
