"""The base of every error a user can act on: the CLI prints its message as one line."""

from __future__ import annotations


class MaasError(RuntimeError):
    """Something the user can fix (bad data, a missing file, an unreachable server, a refused
    version); the message names what is wrong and what to do. Each failure family subclasses it.
    The serving package keeps its own errors (`maas.serving.errors`): it imports nothing else."""
