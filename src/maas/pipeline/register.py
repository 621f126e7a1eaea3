"""The register stage: the trained model becomes an MLflow model version with full lineage, and
the gate's verdict sets the aliases (`challenger` when it passed, `champion` when promoted)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from maas.config import DataParams, RegistryParams
from maas.pipeline.data.windows import TEST_FILE, read_lineage, read_window
from maas.pipeline.evaluation.result import Evaluation
from maas.serving.inference import MODEL_CONFIG_FILE, PREPROCESSING_FILE
from maas.serving.preprocessing import Preprocessor
from maas.tracking.alias_lock import champion_lock
from maas.tracking.keyring import load_key
from maas.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    get_alias_version,
    register_version,
    set_alias,
    set_version_tags,
)
from maas.tracking.runs import RunTracking, git_commit
from maas.tracking.store import connect
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def input_example(data: DataParams, preprocessor: Preprocessor, rows: int = 200) -> pd.DataFrame:
    """A seeded sample of raw test records: the fields a request carries, in that order.

    Stored with the MLflow model; packaging replays it against the container image and
    requires the same predictions as the pyfunc (infra-validation)."""
    if preprocessor.request is None:
        raise ValueError("the model's preprocessing carries no request spec: train it again")
    test = read_window(data, TEST_FILE)[preprocessor.request.names]
    sample = test.sample(n=min(rows, len(test)), random_state=0).sort_index()
    return sample.reset_index(drop=True)


def serving_requirements() -> list[str]:
    """Pinned requirements of the pyfunc model (what `mlflow.pyfunc.load_model` needs)."""
    names = ("mlflow", "onnxruntime", "numpy", "pandas")
    return [f"{name}=={installed_version(name)}" for name in names]


def lineage_tags(
    metrics: Evaluation, lineage: dict[str, Any], params_digest: str
) -> dict[str, str]:
    """The version's tags: code, parameters, data, validation, gate and test metrics."""
    gate = metrics.gate
    metric = metrics.gate_metric
    tags = {
        "kind": metrics.kind,
        **({"classes": json.dumps(metrics.classes)} if metrics.classes else {}),
        "git_commit": git_commit(),
        "params_digest": params_digest,
        "train_partitions": json.dumps(lineage["train_partitions"]),
        "test_partitions": json.dumps(lineage["test_partitions"]),
        "validation_status": lineage["validation_status"],
        "gate_passed": str(gate.passed).lower(),
        "gate_promoted": str(gate.promoted).lower(),
        "gate_reasons": json.dumps(gate.reasons),
        "onnx_parity_max_abs_diff": f"{metrics.onnx_parity_max_abs_diff:.3g}",
        **{f"test_{k}": f"{v:.6f}" for k, v in metrics.test.items()},
        **{
            f"test_optional_absent_{k}": f"{v:.6f}"
            for k, v in (metrics.test_optional_absent or {}).items()
        },
        "gate_metric": metric,
        **{f"baseline_{b}_{metric}": f"{m[metric]:.6f}" for b, m in metrics.baselines.items()},
    }
    champion = metrics.champion
    if champion and metric in champion:
        tags["compared_champion"] = champion["version"]
        tags[f"compared_champion_{metric}"] = f"{champion[metric]:.6f}"
    return tags


@dataclass(frozen=True)
class Registration:
    """The new model version and the aliases the gate's verdict gave it."""

    name: str
    version: str
    aliases: list[str]
    run_id: str
    note: str = ""  # why the gate's promotion did not happen after all ("" when it did)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trained_tags(models_dir: Path) -> dict[str, str]:
    """The network as trained (`model_kind`: a task's model.cpu_kind may have replaced
    model.kind on a host without a GPU) and its numeric embeddings."""
    config = json.loads((models_dir / MODEL_CONFIG_FILE).read_text())
    return {"model_kind": config["kind"], "numeric_embedding": config["numeric_embedding"]}


def register_model(
    *,
    data: DataParams,
    models_dir: Path,
    metrics: Evaluation,
    registry: RegistryParams,
    tracking: RunTracking,
    params_digest: str,
    verdict_key_file: Path,
) -> Registration:
    """Register the trained model as a new version with full lineage, sign the gate's verdict
    (maas.tracking.verdict), set aliases by the gate (`metrics`: the evaluate stage's)."""
    # before anything is written: a bad key stops here (the project's first run makes one)
    key = load_key(verdict_key_file, create=True)
    lineage = read_lineage(data)
    preprocessor = Preprocessor.load(models_dir / PREPROCESSING_FILE)
    client = connect(registry)
    version = register_version(
        client,
        registry,
        tracking.run_id,
        models_dir,
        lineage_tags(metrics, lineage, params_digest) | trained_tags(models_dir),
        input_example(data, preprocessor),
        serving_requirements(),
    )
    signature = sign_verdict(
        key, registry.model_name, str(version.version), tracking.run_id, dict(version.tags)
    )
    set_version_tags(client, registry.model_name, version.version, {SIGNATURE_TAG: signature})
    aliases, note = [], ""
    gate = metrics.gate
    if gate.passed:
        set_alias(client, registry.model_name, CHALLENGER, version.version)
        aliases.append(CHALLENGER)
    if gate.promoted:
        # compare-and-set: no maas move of `champion` lands between the check and the set
        with champion_lock(client.tracking_uri, registry.model_name):
            note = champion_moved(client, registry.model_name, metrics.compared_champion)
            if not note:
                set_alias(client, registry.model_name, CHAMPION, version.version)
                aliases.append(CHAMPION)
        if note:  # the gate's verdict is about a champion that is gone
            log.warning("register: v%s not promoted: %s", version.version, note)
            set_version_tags(
                client, registry.model_name, version.version, {"promotion_skipped": note}
            )
    log.info("register: %s version %s aliases=%s", registry.model_name, version.version, aliases)
    return Registration(
        name=registry.model_name,
        version=str(version.version),
        aliases=aliases,
        run_id=tracking.run_id,
        note=note,
    )


def champion_moved(client: MlflowClient, name: str, before: str | None) -> str:
    """Why the gate's promotion no longer holds ("" when it does): `champion` is not the
    version the gate compared with (another run or a person moved it meanwhile)."""
    current = get_alias_version(client, name, CHAMPION)
    now = str(current.version) if current is not None else None
    if now == before:
        return ""
    return (
        f"champion moved from {'v' + before if before else 'none'} to v{now} since this run's "
        "evaluation; run again to compare with it, or `maas promote` this version"
    )
