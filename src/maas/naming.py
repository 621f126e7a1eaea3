"""A model's name where only lower-case DNS-style names are allowed: image repositories,
container names, Kubernetes objects and their files."""

from __future__ import annotations

import hashlib
import re


def slug(model: str) -> str:
    """`model` lower-cased with anything but letters, digits and `-` made `-`; when that
    changed it, a short digest of the exact name follows, so `Flights` and `flights` (or `a.b`
    and `a_b`), two registered models, never share an image, a container or a manifest."""
    lowered = re.sub(r"[^a-z0-9-]", "-", model.lower())
    if lowered == model:
        return model
    return f"{lowered}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def named(prefix: str, model: str) -> str:
    """`<prefix>-<slug>`: the model's image and Bento repository, container name prefix or
    Kubernetes object name."""
    return f"{prefix}-{slug(model)}"
