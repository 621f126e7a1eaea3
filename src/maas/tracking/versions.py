"""The registered versions as rows: what `maas status` shows for each version."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maas.config.kinds import LINEAR

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    created: str
    gate: str
    validation: str
    metric: str  # the gate's metric (roc_auc for versions registered before task kinds)
    score: float | None  # its test value
    baseline_linear: float | None  # the linear baseline's (logistic or linear regression)
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    from mlflow.exceptions import MlflowException

    try:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
    except MlflowException:
        return []
    rows = []
    for mv in client.search_model_versions(f"name='{name}'", order_by=["version_number DESC"]):
        tags = mv.tags
        metric = tags.get("gate_metric", "roc_auc")
        linear = LINEAR.get(tags.get("kind", "binary"), "logistic_regression")

        def number(key: str, tags: Mapping[str, str] = tags) -> float | None:
            return float(tags[key]) if key in tags else None

        rows.append(
            VersionRow(
                version=str(mv.version),
                aliases=sorted(aliases_by_version.get(str(mv.version), [])),
                created=time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(mv.creation_timestamp / 1000)
                ),
                gate=(
                    "promoted"
                    if tags.get("gate_promoted") == "true"
                    else "passed"
                    if tags.get("gate_passed") == "true"
                    else "failed"
                    if "gate_passed" in tags
                    else "?"
                ),
                validation=tags.get("validation_status", "?"),
                metric=metric,
                score=number(f"test_{metric}"),
                baseline_linear=number(f"baseline_{linear}_{metric}"),
                run_id=mv.run_id or "",
            )
        )
    return rows
