"""One period judged: drift of its served records and of its arrived partition against the
champion's training window, the realized quality once its labels are in, the policy's verdict.
`maas.monitor.run` calls this per period and records what it returns."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from maas.config import Params
from maas.monitor import evidence
from maas.monitor.policy import judge
from maas.pipeline.data import shift
from maas.pipeline.data.partitions import Partition, read_partition
from maas.serving.inference import PREPROCESSING_FILE
from maas.serving.request import RequestSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class Champion:
    """The champion as the monitoring flow needs it: its version, tags, request fields, and
    its own scoring (digest-verified artifacts, recorded serving code, in a subprocess)."""

    version: str
    tags: dict[str, str]
    spec: RequestSpec
    score: Callable[[pd.DataFrame], np.ndarray]
    numeric: list[str]
    categorical: list[str]


def open_champion(
    params: Params, client: MlflowClient, workdir: Path, verdict_key_file: Path | None = None
) -> Champion | None:
    """The champion, once its signed verdict verifies with the gate key (`verdict_key_file`,
    default promotion.verdict_key_file, or $MAAS_GATE_KEY): UntrustedVersionError before
    anything of an unsigned or altered version is downloaded or run."""
    from maas.tracking import serving_code
    from maas.tracking.keyring import load_key
    from maas.tracking.registry import (
        CHAMPION,
        download_serving_artifacts,
        download_serving_code,
        get_alias_version,
    )
    from maas.tracking.verdict import require_verdict

    version = get_alias_version(client, params.registry.model_name, CHAMPION)
    if version is None:
        return None
    require_verdict(load_key(verdict_key_file or params.promotion.verdict_key_file), version)
    model_dir = download_serving_artifacts(client, version, workdir / "model")
    context = download_serving_code(client, version, workdir / "code")
    spec = RequestSpec.from_dict(
        json.loads((model_dir / PREPROCESSING_FILE).read_text())["request"]
    )

    def score(frame: pd.DataFrame) -> np.ndarray:
        columns = [name for name in spec.names if name in frame.columns]
        return np.asarray(serving_code.score_with(context, model_dir, frame[columns]))

    numeric = [f.name for f in spec.fields if f.type in ("int", "float")]
    categorical = [f.name for f in spec.fields if f.name not in numeric]
    return Champion(str(version.version), dict(version.tags), spec, score, numeric, categorical)


def with_prediction(frame: pd.DataFrame, scores: np.ndarray, params: Params) -> pd.DataFrame:
    """`frame` with the prediction column drift is tested on, from the model's raw scores."""
    out = frame.copy()
    column = evidence.prediction_column(params)
    if params.data.label.kind == "multiclass":
        classes = params.data.label.classes
        out[column] = [classes[i] for i in np.asarray(scores).argmax(axis=1)]
    else:
        out[column] = np.asarray(scores).reshape(len(frame), -1)[:, 0]
    return out


def judge_period(
    params: Params,
    champion: Champion,
    reference: pd.DataFrame,
    name: str,
    served: pd.DataFrame,
    partition: Partition | None,
    reports: Path,
    *,
    tags_of: Callable[[str], dict[str, str]],
) -> dict[str, Any]:
    """The period's evidence and verdict (a JSON-able dict); Evidently's reports are written
    under `reports`. A period may span versions: each served version's realized quality is
    judged on its own rows against its own registered metric (`tags_of`: a version's tags);
    the champion's also on the partition it re-scores when none of its rows matched."""
    policy = params.monitoring
    result: dict[str, Any] = {
        "period": name,
        "champion": champion.version,
        "served_rows": len(served),
        "served_versions": sorted(served["model_version"].unique().tolist()) if len(served) else [],
        "arrived_rows": 0,
    }
    prediction = evidence.prediction_column(params)
    if len(served) >= policy.min_rows:
        found = shift.compare(
            reference,
            served,
            champion.numeric,
            champion.categorical,
            prediction,
            policy.drift_share,
        )
        shift.write_report(found, reports, f"{name}-served")
        result["served_drift"] = found.summary()
    elif len(served):
        result["served_note"] = (
            f"{len(served)} served rows (< monitoring.min_rows {policy.min_rows})"
        )
    trained_on = evidence.partitions_of(champion.tags)
    if partition is not None:
        labeled = read_partition(partition)
        result["arrived_rows"] = len(labeled)
        scores: np.ndarray | None = None
        if name not in trained_on and len(labeled) >= policy.min_rows:
            scores = champion.score(labeled)
            arrived = with_prediction(labeled, scores, params)
            found = shift.compare(
                reference,
                arrived,
                champion.numeric,
                champion.categorical,
                prediction,
                policy.drift_share,
            )
            shift.write_report(found, reports, f"{name}-arrived")
            result["arrived_drift"] = found.summary()
        own = evidence.realized_by_version(served, labeled, params)
        by_version = _with_registered(params, own, name, tags_of)
        if by_version:
            result["realized_by_version"] = by_version
        if name in trained_on:
            result["realized_note"] = "the champion trained on this period: not judged on it"
        else:
            realized = own.get(champion.version)
            if realized is None and len(served) and not own:
                keys = ", ".join(params.validation.unique_key) or "none declared"
                result["realized_note"] = (
                    f"none of the {len(served)} served records matched a labeled row by the "
                    f"task's key ({keys}): the partition was re-scored by the champion"
                )
            if realized is None:
                realized = evidence.rescored(
                    labeled, scores if scores is not None else champion.score(labeled), params
                )
            result["realized"] = realized.summary()
    metric, value = evidence.registered_metric(params, champion.tags)
    result["registered"] = {"metric": metric, "value": value}
    verdict = judge(result, policy)
    result["judged"], result["breaches"] = verdict.judged, verdict.breaches
    return result


def _with_registered(
    params: Params,
    own: dict[str, evidence.Realized],
    name: str,
    tags_of: Callable[[str], dict[str, str]],
) -> dict[str, dict[str, Any]]:
    """Each served version's realized quality with the metric it was registered with; a
    version is not judged on a period it trained on."""
    found = {}
    for version, realized in own.items():
        tags = tags_of(version)
        if name in evidence.partitions_of(tags):
            continue
        metric, value = evidence.registered_metric(params, tags)
        found[version] = {**realized.summary(), "registered": {"metric": metric, "value": value}}
    return found


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="maas-monitor-")
