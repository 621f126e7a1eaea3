"""Loading: params.yaml with a task file merged over it, the values `maas tune` wrote, and
`a.b=value` overrides, validated into one frozen `Params`. Nothing else opens these files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import ValidationError

from maas.config.params import Params
from maas.config.sections import TuneParams, searchable
from maas.config.task_files import (
    default_model,
    default_task,
    merge_task,
    read_yaml,
    resolve_task,
    task_files,
)
from maas.errors import ConfigError
from maas.files import write_text_atomic


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (["a","b","c"], value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of raw params with each `a.b=value` override applied."""
    result = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {text!r}: unknown key {'.'.join(path)!r}")
            node = node[part]
        known = isinstance(node, dict) and (path[-1] in node or _is_mapping(path[:-1]))
        if not known:
            raise ConfigError(f"override {text!r}: unknown key {'.'.join(path)!r}")
        node[path[-1]] = value
    return result


def _is_mapping(path: list[str]) -> bool:
    """Whether `path` names a free-form mapping of Params (e.g. `promotion.floors`, whose keys
    are metric names): an override may add a key to it."""
    from pydantic import BaseModel

    model: Any = Params
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return get_origin(annotation) is dict or annotation is dict


def _format_errors(error: ValidationError, source: str) -> str:
    lines = [f"invalid parameters in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a raw mapping; raises ConfigError naming each bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping of sections")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source)) from None


def load_params(
    path: str | Path = "params.yaml", overrides: Iterable[str] = (), task: str | None = None
) -> Params:
    """Read params.yaml and the task's file (`task`, else params.yaml's default task), apply
    the tuned values and then the `a.b=value` overrides, validate."""
    path = Path(path)
    raw = read_raw(path, task)
    overrides = list(overrides)
    tuned = tuned_overrides(raw, overrides)
    source = f"{path} + {task_files(path.parent)[raw['task']]}"
    params = parse_params(apply_overrides(raw, [*tuned, *overrides]), source)
    shared = read_yaml(path, "parameters file")
    if params.deploy.default_model is None and params.task == default_task(path.parent, shared):
        # the default task's model, as the overrides name it: what / of the gateway reaches
        deploy = params.deploy.model_copy(update={"default_model": params.registry.model_name})
        params = params.model_copy(update={"deploy": deploy})
    return params


def read_raw(path: str | Path = "params.yaml", task: str | None = None) -> dict[str, Any]:
    """params.yaml with the task file merged over it, before validation."""
    path = Path(path)
    shared = read_yaml(path, "parameters file")
    name, file = resolve_task(path.parent, shared, task)
    merged = merge_task(shared, name, file)
    deploy = merged.setdefault("deploy", {})
    if deploy.get("default_model") is None and name != default_task(path.parent, shared):
        deploy["default_model"] = default_model(path.parent, shared)  # another task's model
    return merged


def tuned_overrides(raw: dict[str, Any], overrides: list[str]) -> list[str]:
    """The best values `maas tune` wrote to `tune.output`, as overrides that come after
    params.yaml and before the command line's; none when the file is absent or empty."""
    tune = apply_overrides(raw, overrides).get("tune") or {}
    path = Path(tune.get("output") or TuneParams.model_fields["output"].default)
    if not path.is_file():
        return []
    items = _dotted(read_yaml(path, "tune.output"))
    bad = [key for key in items if not searchable(key)]
    if bad:
        raise ConfigError(f"{path} (tune.output) sets what tuning cannot: {', '.join(bad)}")
    return [f"{key}={json.dumps(value)}" for key, value in items.items()]


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    items: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        items |= _dotted(value, f"{name}.") if isinstance(value, dict) else {name: value}
    return items


def write_tuned_values(path: Path, values: dict[str, Any], note: str) -> None:
    """Write what `tuned_overrides` reads: `model.dropout: 0.1` as `model: {dropout: 0.1}`."""
    tree: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    comment = "".join(f"# {line}\n" for line in note.splitlines())
    write_text_atomic(path, comment + yaml.safe_dump(tree, sort_keys=True))
