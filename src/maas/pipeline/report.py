"""How a training run reports itself: the metrics table rows shared by the terminal and the
Prefect summary artifact, and the run's outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maas.config.kinds import metric_names
from maas.pipeline.data.key_hash import PREFIX
from maas.pipeline.evaluation.gate import GateDecision
from maas.pipeline.evaluation.result import Evaluation

if TYPE_CHECKING:
    from maas.pipeline.register import Registration
    from maas.pipeline.stages import TrainSummary, ValidateResult


def metric_columns(metrics: Evaluation) -> tuple[str, ...]:
    """The metrics of the run's kind of task, in table order."""
    return metric_names(metrics.kind)


def metric_rows(metrics: Evaluation, model_label: str) -> list[tuple[str, list[str]]]:
    """(label, formatted `metric_columns` values) for the new model, each baseline, the
    champion."""
    columns = metric_columns(metrics)
    rows: list[tuple[str, dict[str, Any]]] = [(model_label, metrics.test)]
    if metrics.test_optional_absent:
        rows.append(("  same, optional inputs absent", metrics.test_optional_absent))
    rows += [(f"baseline: {name}", values) for name, values in metrics.baselines.items()]
    champion = metrics.champion
    if champion and "unscored" not in champion:
        note = "trained on the test partitions" if champion.get("train_overlap") else "re-scored"
        rows.append((f"champion v{champion['version']} ({note})", champion))
    return [(label, [f"{values[n]:.4f}" for n in columns]) for label, values in rows]


def window_title(metrics: Evaluation) -> str:
    names = ", ".join(metrics.test_partitions)
    title = f"Test partition {names} ({metrics.test_rows:,} rows)"
    if metrics.test_partitions and all(n.startswith(PREFIX) for n in metrics.test_partitions):
        title += ": buckets of a hash of the key (no time column, data.split)"
    return title


def gate_lines(gate: GateDecision) -> list[str]:
    """The verdict, then one line per reason."""
    verdict = "passed" if gate.passed else "failed"
    promoted = "promoted to champion" if gate.promoted else "not promoted"
    return [f"Gate: {verdict}; {promoted}", *(f"- {reason}" for reason in gate.reasons)]


def summary_markdown(
    validated: ValidateResult,
    trained: TrainSummary,
    metrics: Evaluation,
    registered: Registration,
) -> str:
    """The run summary shown as a Prefect artifact."""
    verdict, *reasons = gate_lines(metrics.gate)
    lines = [
        f"# {registered.name} version {registered.version}",
        f"aliases: {', '.join(registered.aliases) or 'none'}; MLflow run `{registered.run_id}`",
        "",
        validated.markdown,
        "",
        f"Training: best epoch {trained.best_epoch}/{trained.epochs_run} on {trained.device}, "
        f"{trained.samples_per_second:,.0f} samples/s",
        "",
        f"## {window_title(metrics)}",
        "| | " + " | ".join(metric_columns(metrics)) + " |",
        "|---" * (len(metric_columns(metrics)) + 1) + "|",
    ]
    for label, values in metric_rows(metrics, "model"):
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    lines += ["", f"**{verdict}**", *reasons]
    if registered.note:
        lines += ["", f"**Not promoted after all:** {registered.note}"]
    return "\n".join(lines)


def run_outcome(
    timings: dict[str, float],
    validated: ValidateResult,
    trained: TrainSummary,
    metrics: Evaluation,
    registered: Registration,
) -> dict[str, Any]:
    """What `maas run` prints (and `--json` returns): versions, metrics, gate, timings."""
    return {
        "timings": timings,
        "registered": registered.to_json(),
        "metrics": metrics.to_json(),
        "validation": validated.status,
        "training": {
            "best_epoch": trained.best_epoch,
            "epochs": trained.epochs_run,
            "device": trained.device,
            "samples_per_second": trained.samples_per_second,
        },
    }
