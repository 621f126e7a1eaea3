"""A monitoring pass as people read it: one line per judged period (the Prefect artifact,
`maas monitor`'s table, the docs' per-month tables)."""

from __future__ import annotations

from typing import Any

COLUMNS = ("period", "served", "served drift", "arrived drift", "realized", "registered", "breach")


def period_row(period: dict[str, Any]) -> list[str]:
    def share(source: str) -> str:
        found = period.get(f"{source}_drift")
        return f"{found['share']:.0%} ({len(found['drifted'])})" if found else "-"

    registered = period.get("registered") or {}
    metric = registered.get("metric", "")
    realized = period.get("realized")
    value = (realized or {}).get("metrics", {}).get(metric)
    shown = (
        f"{metric} {value:.4f} ({realized['source']})" if realized and value is not None else "-"
    )
    before = registered.get("value")
    return [
        period["period"],
        str(period["served_rows"]),
        share("served"),
        share("arrived"),
        shown,
        f"{before:.4f}" if before is not None else "-",
        ", ".join(short(r) for r in period.get("breaches") or [])
        or ("no" if period.get("judged") else "not judged"),
    ]


def short(reason: str) -> str:
    """A breach in two words: "served drift", "arrived drift", "roc_auc drop"."""
    words = reason.split(" ")
    return f"{words[1]} drop" if words[0] == "realized" else f"{words[0]} drift"


def markdown(outcome: Any) -> str:
    lines = [f"**{outcome.task}** ({outcome.model}): {outcome.status}"]
    if outcome.skipped_lines:
        lines.append(f"\n{outcome.skipped_lines} torn or unreadable log line(s) skipped")
    if outcome.periods:
        lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(period_row(p)) + " |" for p in outcome.periods]
    else:
        lines.append("\nno period with new evidence")
    if outcome.new_breaches:
        action = (
            "retraining now" if outcome.retrain is None else f"no retraining: {outcome.retrain}"
        )
        lines.append(f"\n{len(outcome.new_breaches)} new breach(es): {action}")
    return "\n".join(lines)
