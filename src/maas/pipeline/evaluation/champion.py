"""The current champion re-scored on this run's test partitions, for the gate: unless it
predicts another target, trained on those partitions, or cannot be scored (each said)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from maas.config import RegistryParams
from maas.errors import MaasError

log = logging.getLogger(__name__)


def champion_score(
    registry: RegistryParams,
    test: pd.DataFrame,
    test_partitions: list[str],
    kind: str = "binary",
    classes: list[str] | None = None,
    *,
    verdict_key_file: Path,
) -> dict[str, Any] | None:
    """Re-score the current champion on this test month; None when there is no champion.

    `train_overlap` names test partitions the champion trained on (its score there is
    inflated); a champion that cannot be re-scored (registered by hand without digests,
    missing artifacts) comes back as `unscored` with the reason, not as an error. Its recorded
    code runs only once its signed verdict verifies with the gate key (`verdict_key_file`,
    promotion.verdict_key_file / $MAAS_GATE_KEY): an unsigned or altered champion is
    `unscored`, the reason naming the signature, and nothing of it runs."""
    from mlflow.exceptions import MlflowException

    from maas.pipeline.evaluation.metrics import compute_metrics
    from maas.serving.errors import ServingError
    from maas.tracking.keyring import load_key
    from maas.tracking.registry import CHAMPION, get_alias_version, score_version
    from maas.tracking.store import connect

    client = connect(registry)
    version = get_alias_version(client, registry.model_name, CHAMPION)
    if version is None:
        return None
    number = str(version.version)
    other = other_target(dict(version.tags), kind, classes or [])
    if other is not None:  # its outputs would be scored as if they were this task's
        return {"version": number, "unscored": other}
    try:
        preds = score_version(client, version, test, load_key(verdict_key_file))
    except (MaasError, ServingError, MlflowException, OSError) as error:
        log.warning("champion v%s not re-scored: %s", number, error)
        return {"version": number, "unscored": str(error)[:300]}
    trained_on = json.loads(version.tags.get("train_partitions") or "{}")
    overlap = sorted(set(trained_on) & set(test_partitions))
    try:
        metrics = compute_metrics(test["label"].to_numpy(), preds, kind)
    except ValueError as error:  # e.g. a champion of another kind (its output's shape)
        return {"version": number, "unscored": str(error)[:300]}
    return {"version": number, **metrics, "train_overlap": overlap}


def other_target(tags: dict[str, str], kind: str, classes: list[str]) -> str | None:
    """Why a registered version predicts another target than this task's (its kind, or its
    classes in their order); None when it predicts the same."""
    theirs = tags.get("kind", "binary")
    if theirs != kind:
        return f"it is a {theirs} model and this task is {kind}"
    if kind == "multiclass" and json.loads(tags.get("classes") or "[]") != classes:
        return f"its classes {tags.get('classes')} are not this task's {classes}"
    return None
