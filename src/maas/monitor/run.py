"""A task's monitoring pass (the `monitoring` flow, `maas monitor`): read the prediction log,
judge every period with new evidence (`maas.monitor.judge`), record each in MLflow (one run
per task and period, tagged with the served version) and in the task's state, alert on new
breaches, and say whether the policy retrains now."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from maas.audit import AuditTrail
from maas.config import Params
from maas.monitor import alerts, evidence
from maas.monitor.judge import judge_period, open_champion, temporary_folder, with_prediction
from maas.monitor.policy import may_retrain
from maas.monitor.predictions import LogColumns, read_predictions
from maas.monitor.state import read_state, write_state

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

PERIOD_TAG = "maas.monitor.period"
VERSION_TAG = "maas.monitor.version"


@dataclass
class Pass:
    task: str
    model: str
    status: str  # "ok" | why nothing was judged ("no champion yet", ...)
    periods: list[dict[str, Any]] = field(default_factory=list)  # judged in this pass
    skipped_lines: int = 0
    new_breaches: list[dict[str, Any]] = field(default_factory=list)
    retrain: str | None = None  # None: retrain now; else why not (when there was a breach)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model,
            "status": self.status,
            "periods": self.periods,
            "skipped_lines": self.skipped_lines,
            "new_breaches": self.new_breaches,
            "retrain": self.retrain,
        }


def monitor_task(params: Params, now: dt.datetime | None = None) -> Pass:
    from maas.tracking.store import connect

    now = now or dt.datetime.now(dt.UTC)
    model = params.registry.model_name
    client = connect(params.registry)
    state = read_state(params.monitoring.state_dir, params.task)
    logged = read_predictions(
        params.monitoring.log_dir / model, params.serving.body_key, LogColumns.of(params)
    )
    outcome = Pass(params.task, model, "ok", skipped_lines=logged.skipped)
    if logged.skipped:
        log.warning(
            "%s: %d torn or unreadable log line(s) skipped: %s",
            model,
            logged.skipped,
            logged.skipped_by_file,
        )
    with temporary_folder() as tmp:
        champion = open_champion(params, client, Path(tmp), params.promotion.verdict_key_file)
        if champion is None:
            outcome.status = f"no champion of {model} yet: nothing to compare with"
            return outcome
        window = evidence.partitions_of(champion.tags)
        try:
            reference = evidence.reference_rows(params, window)
        except LookupError as error:
            outcome.status = f"no reference window yet: {error}"
            return outcome
        reference = with_prediction(reference, champion.score(reference), params)
        tags_of = _registered_tags(client, model)
        served = logged.frame
        periods = evidence.served_periods(served, params) if not served.empty else pd.Series()
        partitions = evidence.partitions(params)
        last_trained = max(window)
        names = sorted(
            {*periods.dropna().unique().tolist(), *(n for n in partitions if n > last_trained)}
        )
        for name in names:
            rows = served[periods == name] if not served.empty else served
            partition = partitions.get(name)
            evidence_key = _fingerprint(champion.version, rows, partition)
            kept = state["periods"].get(name, {})
            if kept.get("evidence") == evidence_key:
                continue  # judged on exactly this evidence already
            reports = Path(tmp) / "reports" / name
            result = judge_period(
                params, champion, reference, name, rows, partition, reports, tags_of=tags_of
            )
            result["run_id"] = _record(client, params, result, reports)
            alerted = list(kept.get("alerted", []))
            fresh = [r for r in result["breaches"] if _kind(r) not in {_kind(a) for a in alerted}]
            if fresh:  # each kind of breach is alerted once per period
                outcome.new_breaches += [{"period": name, "reason": r} for r in fresh]
                alerted += fresh
                _alert(params, client, champion.version, name, fresh)
            state["periods"][name] = {
                **result,
                "evidence": evidence_key,
                "alerted": alerted,
                "judged_at": now.isoformat(),
            }
            write_state(params.monitoring.state_dir, params.task, state)
            outcome.periods.append(result)
    if outcome.new_breaches:
        seen = max([*window, *evidence.partitions_of(champion.tags, "test_partitions")])
        outcome.retrain = may_retrain(
            params.monitoring, state.get("last_retrain"), now, max(partitions, default=None), seen
        )
        if outcome.retrain is None:
            state["last_retrain"] = now.isoformat()
            write_state(params.monitoring.state_dir, params.task, state)
    return outcome


def _fingerprint(version: str, rows: pd.DataFrame, partition: Any) -> str:
    """What a period's verdict rests on: the champion, the served records (how many, which
    requests) and the arrived partition's file."""
    ids = sorted(rows["request_id"].unique().tolist()) if len(rows) else []
    stat = partition.path.stat() if partition is not None else None
    text = json.dumps([version, len(rows), ids, [stat.st_size, stat.st_mtime_ns] if stat else None])
    return hashlib.sha256(text.encode()).hexdigest()


def _record(client: MlflowClient, params: Params, result: dict[str, Any], reports: Path) -> str:
    """The period's MLflow run in `<experiment>-monitoring`, one per period and champion (the
    same run when judged again), with its metrics and Evidently's reports."""
    experiment_name = f"{params.registry.experiment}-monitoring"
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(experiment_name)
    )
    period, version = result["period"], result["champion"]
    by = f"tags.`{PERIOD_TAG}` = '{period}' and tags.`{VERSION_TAG}` = '{version}'"
    found = client.search_runs([experiment_id], filter_string=by, max_results=1)
    tags = {
        PERIOD_TAG: result["period"],
        VERSION_TAG: result["champion"],
        "model_name": params.registry.model_name,
        "task": params.task,
    }
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run = client.create_run(
            experiment_id, run_name=f"{params.task} {result['period']}", tags=tags
        )
        run_id = run.info.run_id
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for key, value in _metrics(result).items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, json.dumps(result, indent=2, default=str), "monitoring/period.json")
    if reports.is_dir():
        client.log_artifacts(run_id, str(reports), "monitoring")
    client.set_terminated(run_id, "FINISHED")
    return str(run_id)


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    out = {key: float(result[key]) for key in ("served_rows", "arrived_rows")}
    out["breach"] = float(bool(result["breaches"]))
    for source in ("served", "arrived"):
        found = result.get(f"{source}_drift")
        if found:
            out[f"{source}_drift_share"] = found["share"]
    realized = result.get("realized")
    if realized:
        out.update({f"realized_{k}": v for k, v in realized["metrics"].items()})
    registered = result.get("registered") or {}
    if registered.get("value") is not None:
        out[f"registered_{registered['metric']}"] = registered["value"]
    return out


def _kind(reason: str) -> str:
    """A breach's kind: "served inputs", "arrived inputs", "v<N>'s realized" (the same for
    a version before and after a promotion, so a period judged again alerts nothing twice)."""
    return " ".join(reason.split(" ")[:2])


def _registered_tags(client: MlflowClient, model: str) -> Callable[[str], dict[str, str]]:
    """A version's registry tags, read once per pass (a deleted version: none)."""
    cache: dict[str, dict[str, str]] = {}

    def tags_of(version: str) -> dict[str, str]:
        if version not in cache:
            try:
                cache[version] = dict(client.get_model_version(model, version).tags)
            except Exception as error:  # deleted since it served: nothing to compare with
                log.warning(
                    "%s v%s: no registered metric to judge it by (%s)", model, version, error
                )
                cache[version] = {}
        return cache[version]

    return tags_of


def _alert(
    params: Params, client: MlflowClient, version: str, period: str, reasons: list[str]
) -> None:
    body = alerts.alert_body(params, period, version, reasons)
    log.warning("%s", body["text"])
    problem = alerts.post_alert(params, body)
    AuditTrail.of(params, client).record(
        "monitor_alert",
        version,
        actor="monitor",
        period=period,
        reason="; ".join(reasons),
        webhook=problem or ("sent" if params.monitoring.alert_webhook else "none"),
    )
