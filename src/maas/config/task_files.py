"""Task files: `tasks/<name>.yaml` beside params.yaml, one per task. A task file holds the
task's own sections (its data, validation suite, features, request names) and may override any
shared setting of params.yaml; the two are merged here into one raw mapping."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from maas.config.params import Params
from maas.config.task_spec import TASK_NAME
from maas.errors import ConfigError

TASKS_DIR = "tasks"
# Keys only a task file has; everything else in it is a params.yaml section it overrides.
TASK_KEYS = ("name", "description")


def task_files(root: Path) -> dict[str, Path]:
    """Every task beside the parameters file: name (the file's stem) -> file."""
    folder = root / TASKS_DIR
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    found: dict[str, Path] = {}
    for path in files:
        if path.stem in found:
            raise ConfigError(f"two task files named {path.stem!r}: {found[path.stem]} and {path}")
        found[path.stem] = path
    return found


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping of sections (`what`: the file's role, named in every error)."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} ({what}) is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} ({what}) must be a mapping of sections, like model: {{...}}")
    return raw


def resolve_task(root: Path, shared: dict[str, Any], task: str | None) -> tuple[str, Path]:
    """The task asked for, else params.yaml's default `task`; an unknown name lists the known."""
    name = task or shared.get("task")
    files = task_files(root)
    if not name:
        if len(files) == 1:
            name = next(iter(files))
        else:
            raise ConfigError(
                f"no task chosen: give --task NAME (tasks: {', '.join(files) or 'none'}) or set "
                "`task:` in params.yaml"
            )
    if not re.match(TASK_NAME, str(name)):
        raise ConfigError(f"task name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    if name not in files:
        known = ", ".join(files) or f"none ({root / TASKS_DIR} holds no task file)"
        raise ConfigError(f"unknown task {name!r}; tasks: {known} (`maas task init` makes one)")
    return str(name), files[name]


def merge_task(shared: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """params.yaml's sections with the task file's merged over them (mappings key by key)."""
    own = read_yaml(path, "task file")
    if own.get("name", name) != name:
        raise ConfigError(f"{path}: name {own['name']!r} differs from the file's name {name!r}")
    merged = json.loads(json.dumps(shared))
    for key, value in own.items():
        if key in TASK_KEYS:
            continue
        if key not in Params.model_fields or key == "task":
            raise ConfigError(f"{path}: unknown section {key!r}")
        merged[key] = _merged(merged.get(key), value)
    merged["task"] = name
    merged["description"] = str(own.get("description", ""))
    registry = merged.setdefault("registry", {})
    registry.setdefault("model_name", name)
    registry.setdefault("experiment", f"maas-{name}")
    registry.setdefault("description", merged["description"])
    return merged


def default_task(root: Path, shared: dict[str, Any]) -> str | None:
    """params.yaml's `task`, else the only task (None: several and none chosen)."""
    files = task_files(root)
    return shared.get("task") or (next(iter(files)) if len(files) == 1 else None)


def default_model(root: Path, shared: dict[str, Any]) -> str | None:
    """The registered model of the default task (its file's): what the stable address
    serves at / beside /models/<name>/."""
    files = task_files(root)
    name = default_task(root, shared)
    if name not in files:
        return None
    own = read_yaml(files[name], "task file").get("registry") or {}
    return str(own.get("model_name") or name)


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        result = dict(base)
        for key, value in over.items():
            result[key] = _merged(base.get(key), value)
        return result
    return over
