"""Terminal rendering of command results (tables); the data comes from maas functions."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from maas.cli.common import out
from maas.config.kinds import METRICS
from maas.pipeline.evaluation.result import Evaluation
from maas.pipeline.report import gate_lines, metric_columns, metric_rows, window_title

PIPED_WIDTH = 200  # a pipe or a file has no width: whole rows, not columns cut to fit 80


def print_run(result: dict[str, Any]) -> None:
    """What `maas run` prints: the new version, validation, training, the metrics table, the
    stage timings and the gate's verdict with its reasons."""
    registered, training = result["registered"], result["training"]
    metrics = Evaluation.from_json(result["metrics"])
    table = Table(title=window_title(metrics))
    table.add_column("model")
    for name in metric_columns(metrics):
        table.add_column(name, justify="right")
    label = f"{registered['name']} v{registered['version']} (this run)"
    for row_label, values in metric_rows(metrics, label):
        table.add_row(row_label, *values)
    out.print(
        f"Registered model version: [bold]{registered['name']} v{registered['version']}[/bold]"
        f"  aliases: {', '.join(registered['aliases']) or 'none'}  run: {registered['run_id']}"
    )
    out.print(
        f"Validation: {result['validation']}; training: best epoch {training['best_epoch']}/"
        f"{training['epochs']} on {training['device']} "
        f"({training['samples_per_second']:,.0f} samples/s)"
    )
    out.print(table)
    timings = result.get("timings", {})
    if timings:
        out.print("Stage wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    verdict, *reasons = gate_lines(metrics.gate)
    out.print(f"[bold]{verdict}[/bold]")
    for reason in reasons:
        out.print(f"  {reason}")
    if registered.get("note"):
        out.print(f"[bold]Not promoted after all:[/bold] {registered['note']}")


def print_table(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table where it fits; in a terminal too narrow for its rows, each row as a block of
    `header: value` lines (no cell cut to '…'); piped, whole rows on one line each."""
    console = out if out.is_terminal else Console(width=PIPED_WIDTH)
    needed = sum(max([len(h), *(len(r[i]) for r in rows)]) + 3 for i, h in enumerate(headers)) + 1
    if needed <= console.width:
        table = Table(title=title)
        for header in headers:
            table.add_column(header, no_wrap=True)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(f"[italic]{title}[/italic]", highlight=False)
    width = max(len(h) for h in headers)
    for row in rows:
        for header, value in zip(headers, row, strict=True):
            console.print(f"  {header:>{width}}: {value}", highlight=False, soft_wrap=True)
        console.print()


def print_status(status: Any) -> None:
    """`maas status`: versions, what serves, the audit trail (a maas.operate.status.Status)."""
    rows = []
    for r in status.versions:
        label = METRICS[r.metric].label if r.metric in METRICS else r.metric
        rows.append(
            [
                r.version,
                ", ".join(r.aliases),
                r.created,
                r.validation,
                r.gate,
                f"{label} {r.score:.4f}" if r.score is not None else "-",
                f"{r.baseline_linear:.4f}" if r.baseline_linear is not None else "-",
                r.run_id[:12],
            ]
        )
    print_table(
        f"{status.model} ({len(status.versions)} versions)",
        (
            "version",
            "aliases",
            "created",
            "validation",
            "gate",
            "test",
            "linear baseline",
            "run",
        ),
        rows,
    )
    if status.deployed is not None or status.champion is not None:
        state = "in sync" if status.in_sync else "MISMATCH: the controller has not converged"
        where = status.deployed.endpoint if status.deployed else status.address
        out.print(
            f"serving ({status.target}) at {where}: v{status.serving or '-'}; champion: "
            f"v{status.champion or '-'} ({state})"
        )
    if status.rollout is not None:  # `maas rollout status` shows its checks
        shown = status.rollout
        out.print(f"rollout: v{shown['candidate']} {shown['state']} (step {shown['step']})")
    if len(status.catalog) > 1 or any(e["model"] != status.model for e in status.catalog):
        print_table(
            f"models at {status.address} (GET /models)",
            (
                "model",
                "task",
                "kind",
                "state",
                "serving",
                "champion",
                "endpoint",
                "deployed",
            ),
            [
                [
                    e["model"],
                    e.get("task", ""),
                    e.get("kind", ""),
                    e.get("state", "")
                    + (
                        f" (v{e.get('champion_version')} {e['champion_state']})"
                        if e.get("champion_state", e.get("state")) != e.get("state")
                        else ""
                    ),
                    f"v{e.get('served_version') or '-'}",
                    f"v{e.get('champion_version') or '-'}",
                    e.get("endpoint") or "-",
                    e.get("deployed_at") or "-",
                ]
                for e in status.catalog
            ],
        )
    if status.scoring:
        print_table(
            "batch jobs (maas score)",
            ("version", "rows", "refused", "records/s", "output"),
            [
                [
                    f"v{job.get('version', '-')}",
                    f"{job.get('rows', 0):,.0f}",
                    f"{job.get('errors', 0):,.0f}",
                    f"{job.get('records_per_s', 0):,.0f}",
                    job.get("output", ""),
                ]
                for job in status.scoring
            ],
        )
    if status.monitoring:
        from maas.monitor.report import COLUMNS, period_row

        print_table(
            "monitoring (newest judged periods; `maas monitor`)",
            COLUMNS,
            [period_row(p) for p in status.monitoring],
        )
    if status.audit:
        events = []
        for event in status.audit:
            why = (
                event.get("reason")
                or "; ".join(event.get("reasons") or [])
                or (f"previous v{event['previous']}" if event.get("previous") else "")
            )
            events.append(
                [
                    event.get("ts", ""),
                    event.get("event", ""),
                    str(event.get("version") or "-"),
                    event.get("actor", ""),
                    str(why)[:120],
                ]
            )
        print_table("audit trail (newest last)", ("when", "event", "version", "who", "why"), events)


def print_package(result: Any) -> None:
    """`maas package`: the Bento, the image, its validation (a release PackageResult)."""
    out.print(f"{result.model} v{result.version}: bento {result.bento_tag}")
    if result.image:
        size = (result.image_size_bytes or 0) / 1e6
        out.print(
            f"image {result.image} ({result.image_id[:12] if result.image_id else '?'}, "
            f"{size:.0f} MB, user {result.image_user or 'root'}) built with {result.backend}"
        )
        out.print(f"infra-validation: {result.infra_validation} {result.latency_ms}")
    if result.reused:
        out.print(f"reused: {', '.join(result.reused)}")
    if result.note:
        out.print(result.note)
    out.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))


def print_monitoring(result: dict[str, Any]) -> None:
    """What `maas monitor` prints: each period judged in this pass, the breaches and action."""
    from maas.monitor.report import COLUMNS, period_row

    out.print(f"{result['task']} ({result['model']}): {result['status']}")
    if result["skipped_lines"]:
        out.print(f"{result['skipped_lines']} torn or unreadable prediction log line(s) skipped")
    if result["periods"]:
        table = Table(title="periods judged in this pass")
        for column in COLUMNS:
            table.add_column(column)
        for period in result["periods"]:
            table.add_row(*period_row(period))
        out.print(table)
    elif result["status"] == "ok":
        out.print("no period with new evidence since the last pass")
    for breach in result["new_breaches"]:
        out.print(f"[red]breach[/red] {breach['period']}: {breach['reason']}")
    training = result.get("training")
    if training:
        out.print(
            f"retrained: {training['name']} v{training['version']} "
            f"(aliases: {', '.join(training['aliases']) or 'none'})"
        )
    elif result["new_breaches"]:
        out.print(f"no retraining: {result['retrain']}")
