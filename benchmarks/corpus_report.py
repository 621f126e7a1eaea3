"""reports/corpus.md from the outcomes of benchmarks/corpus.py: one row per table (rows,
kind, test window, our score beside the run's logistic/linear and HistGradientBoosting
baselines, time, result), then each failure's exact message and what `task init` said."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from benchmarks.corpus_datasets import BY_NAME


@dataclass
class Outcome:
    """What one table did; `failed` names the first step that did not succeed."""

    name: str
    kind: str
    rows: int = 0
    columns: int = 0
    notes: list[str] = field(default_factory=list)  # what `task init` said
    test_window: str = ""
    test_rows: int | None = None
    metric: str = ""
    score: float | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    promoted: bool | None = None
    gate: str = ""
    served: str = ""  # the first prediction, shortened
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    failed: str = ""  # step name
    error: str = ""  # its message, exact

    @property
    def ok(self) -> bool:
        return not self.failed


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def report_markdown(
    outcomes: list[Outcome],
    *,
    max_rows: int | None,
    package: bool,
    run_sets: tuple[str, ...] = (),
) -> str:
    """reports/corpus.md: a table per run, then each failure's exact message and the notes."""
    passed = sum(outcome.ok for outcome in outcomes)
    lines = [
        "# The corpus: real public tables from file to served prediction",
        "",
        f"Written by `python benchmarks/corpus.py` ({time.strftime('%Y-%m-%d %H:%M UTC')}"
        f"; rows per table: {max_rows or 'all'}"
        + (" or a table's own minimum (its rows column)" if max_rows else "")
        + "; serving: "
        f"{'packaged image in a container' if package else '`maas serve` (BentoML, no container)'}"
        "). Only `maas task init` flags, params.yaml as it ships, the CPU default model"
        + (f"; `maas run --set {' --set '.join(run_sets)}`" if run_sets else "")
        + ".",
        "",
        f"**{passed} of {len(outcomes)}** went from file to a served prediction.",
        "",
        "| table | kind | rows | test window | metric | ours | logistic/linear | HGB | "
        "time (s) | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        linear = next((v for k, v in o.baselines.items() if "regression" in k), None)
        hgb = o.baselines.get("hist_gradient_boosting")
        window = o.test_window if len(o.test_window) < 40 else o.test_window[:37] + "..."
        result = "served" if o.ok else f"**failed at {o.failed}**"
        lines.append(
            f"| {o.name} | {o.kind} | {o.rows:,} | {window or '–'} | {o.metric or '–'} | "
            f"{number(o.score)} | {number(linear)} | {number(hgb)} | "
            f"{sum(o.seconds.values()):.0f} | {result} |"
        )
    lines += ["", "## Failures, with the exact message", ""]
    lines += [f"- **{o.name}** ({o.failed}): `{o.error}`" for o in outcomes if not o.ok] or ["none"]
    lines += ["", "## The first prediction each served table answered", ""]
    lines += [f"- **{o.name}**: `{o.served}`" for o in outcomes if o.ok] or ["none"]
    lines += ["", "## What `task init` said", ""]
    for o in outcomes:
        if o.notes:
            lines.append(f"- **{o.name}**: " + " / ".join(o.notes))
    lines += ["", "## The tables", ""]
    for o in outcomes:
        d = BY_NAME[o.name]
        lines.append(
            f"- **{o.name}** — {d.source}; label `{d.label}`, time "
            f"{f'`{d.time}`' if d.time else 'none'}; covers: {d.covers}; prepared: {d.prepared}; "
            f"flags: `{' '.join(d.flags) or '-'}`"
        )
    return "\n".join(lines) + "\n"
