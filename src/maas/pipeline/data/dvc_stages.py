"""A task's DVC stages (`ingest-`, `validate-`, `train-`, `evaluate-<task>`), written into
dvc.yaml by `maas task init`, so that adding a task is one file a team edits (the task file)
and `dvc repro evaluate-<task>` reproduces it. The stages are the hotel-rates example's: each
runs the same maas function as the Prefect flow, with the task's folders and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maas.config import Params

VALIDATE = [
    "stages.py",
    "data/windows.py",
    "data/partitions.py",
    "data/shift.py",
    "validation/run.py",
    "validation/cache.py",
    "validation/batch.py",
    "validation/suite.py",
    "validation/drift.py",
    "validation/screen.py",
    "validation/outcome.py",
    "validation/context.py",
    "validation/spark.py",
]
TRAIN = [
    "stages.py",
    "data/windows.py",
    "training/fit.py",
    "training/loss.py",
    "training/checkpoints.py",
    "training/prepare.py",
    "training/budget.py",
    "training/candidates.py",
    "training/job.py",
    "training/progress.py",
    "training/imbalance.py",
    "evaluation/difference.py",
    "training/augment.py",
    "training/distributed.py",
    "training/model.py",
    "training/export.py",
    "training/request_spec.py",
]
EVALUATE = [
    "stages.py",
    "data/windows.py",
    "evaluation/metrics.py",
    "evaluation/gate.py",
    "evaluation/champion.py",
    "evaluation/plots.py",
    "evaluation/result.py",
    "training/export.py",
]
SERVING = ["src/maas/serving/preprocessing.py", "src/maas/serving/derive.py"]
EVALUATE_MORE = ["src/maas/config/kinds.py", "src/maas/serving/inference.py", SERVING[0]]


def _pipeline(names: list[str]) -> list[str]:
    return [f"src/maas/pipeline/{name}" for name in names]


def task_stages(params: Params, task_file: str) -> dict[str, dict[str, Any]]:
    """The four stages of `params.task`, its paths relative to the project."""
    name, data = params.task, params.data
    raw, processed = str(data.raw_dir), str(data.processed_dir)
    models, metrics = str(params.train.models_dir), str(params.evaluate.metrics_path)
    tuned = [str(params.tune.output)] if params.tune.output.is_file() else []  # once tuned
    stages: dict[str, dict[str, Any]] = {}
    if data.source.kind != "folder":  # else the partitions are dropped in and `dvc add`ed
        ingest_deps = ["src/maas/pipeline/data/sources.py", "src/maas/pipeline/data/key_hash.py"]
        if data.source.kind == "file" and data.source.path is not None:
            ingest_deps.append(str(data.source.path))
        stages[f"ingest-{name}"] = {
            "cmd": f"maas ingest --task {name}",
            "deps": ingest_deps,
            "params": [{task_file: ["data.source", "data.time" if data.time else "data.split"]}],
            "outs": [raw],
        }
    return {
        **stages,
        f"validate-{name}": {
            "cmd": f"maas stage validate --task {name}",
            "deps": [raw, *_pipeline(VALIDATE)],
            "params": ["data", "validation", {task_file: ["data", "validation"]}],
            "outs": [processed, {str(params.validation.reports_dir): {"cache": False}}],
        },
        f"train-{name}": {
            "cmd": f"maas stage train --task {name}",
            "deps": [processed, *_pipeline(TRAIN), *SERVING, *tuned],
            "params": ["model", "train", {task_file: ["features", "serving", "validation"]}],
            "outs": [models],
        },
        f"evaluate-{name}": {
            "cmd": f"maas stage evaluate --task {name}",
            "deps": [processed, models, *_pipeline(EVALUATE), *EVALUATE_MORE],
            "params": ["evaluate", "promotion", {task_file: ["evaluate"]}],
            "metrics": [{metrics: {"cache": False}}],
            "plots": [{str(params.evaluate.plots_dir): {"cache": False}}],
        },
    }


def add_task_stages(params: Params, dvc_yaml: Path, task_file: Path) -> list[str]:
    """Put the task's stages into `dvc_yaml` (replacing its own earlier ones, keeping every
    other stage and the file's comments); the stage names."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments and order stay
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(dvc_yaml.read_text()) or {}
    stages = document.setdefault("stages", {})
    relative = str(task_file.resolve().relative_to(dvc_yaml.parent.resolve()))
    added = task_stages(params, relative)
    for stage, definition in added.items():
        stages[stage] = definition
    with dvc_yaml.open("w") as handle:
        yaml.dump(document, handle)
    return list(added)
