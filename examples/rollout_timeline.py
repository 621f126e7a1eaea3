"""The rollouts of examples/rollout_replay.py as records, a Markdown table and a timeline PNG:
from the audit trail (rollout_started, rollout_step, rollout_rolled_back, deployed, with their
checks' numbers) and the client's answers (wall time, HTTP status, the version that answered)."""

from __future__ import annotations

import calendar
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

Answer = tuple[float, int, "str | None"]
ENDINGS = {"deployed": "promoted", "rollout_rolled_back": "rolled back", "failed": "failed"}
BIN_S = 5.0  # seconds per bin of the candidate's share


def epoch(ts: str) -> float:
    return float(calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))


def percent_of(step: str | int) -> int:
    """`shadow` -> 0, `canary 25%` or 25 -> 25."""
    text = str(step).removeprefix("canary ").removesuffix("%")
    return 0 if text == "shadow" else int(text)


def rollout_record(
    version: str, promoted_at: float, events: list[dict[str, Any]], answers: list[Answer]
) -> dict[str, Any]:
    """One rollout: its steps (seconds since it started, the checks and their numbers), the
    decision, and the answers from the promotion to 15 s after the decision."""
    mine = [e for e in events if e.get("version") == version and epoch(e["ts"]) >= promoted_at - 1]
    started = next((e for e in mine if e["event"] == "rollout_started"), None)
    t0 = epoch(started["ts"]) if started else promoted_at
    end = next((e for e in mine if e["event"] in ENDINGS), None)
    steps = [
        {
            "t_s": epoch(e["ts"]) - t0,
            "ts": e["ts"],
            "passed": e["passed"],
            "now": e["now"],
            "checks": e.get("checks", {}),
        }
        for e in mine
        if e["event"] == "rollout_step"
    ]
    decision: dict[str, Any] = {"decision": "none"}
    if end is not None:
        decision = {
            "decision": ENDINGS[end["event"]],
            "t_s": epoch(end["ts"]) - t0,
            "ts": end["ts"],
            "at": end.get("step", "canary 100%" if end["event"] == "deployed" else None),
            "reason": end.get("reason") or end.get("rollout"),
            "checks": end.get("checks", {}),
        }
    until = (epoch(end["ts"]) if end else time.time()) + 15
    window = [a for a in answers if promoted_at <= a[0] <= until]
    return {
        "candidate": version,
        "previous": started.get("previous") if started else None,
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(promoted_at)),
        "packaging_s": t0 - promoted_at,  # `maas promote` to the rollout's start
        "started": started["ts"] if started else None,
        "steps_planned": started.get("steps") if started else None,
        "steps": steps,
        **decision,
        "requests": len(window),
        "failed_requests": sum(1 for a in window if a[1] != 200),
        "requests_per_version": dict(Counter(str(a[2]) for a in window if a[1] == 200)),
    }


def schedule(rollout: dict[str, Any]) -> list[tuple[float, int]]:
    """The candidate's target weight over time: each step's percent from its start."""
    first = (rollout["steps_planned"] or ["shadow"])[0]
    points = [(0.0, percent_of(first))]
    points += [(s["t_s"], percent_of(s["now"])) for s in rollout["steps"]]
    if rollout["decision"] in ENDINGS.values():
        points.append((rollout["t_s"], 100 if rollout["decision"] == "promoted" else 0))
    return points


def write(report: dict[str, Any], stem: Path) -> None:
    """The report as JSON and a Markdown table: one row per decision."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    lines = [
        "| version | at (s since the rollout started) | decision | checks |",
        "|---|---|---|---|",
    ]
    for r in report["rollouts"]:
        for s in r["steps"]:
            checks = "; ".join(f"{k}: {v.get('reason', '')}" for k, v in s["checks"].items())
            checks = checks.replace("|", "\\|")
            lines.append(
                f"| v{r['candidate']} | {s['t_s']:.0f} | {s['passed']} passed | {checks} |"
            )
        if r["decision"] != "none":
            at = f" at {r['at']}" if r["decision"] == "rolled back" else ""
            reason = str(r.get("reason") or "").replace("|", "\\|")
            lines.append(f"| v{r['candidate']} | {r['t_s']:.0f} | {r['decision']}{at} | {reason} |")
        per = ", ".join(f"v{v} {n}" for v, n in sorted(r["requests_per_version"].items()))
        lines.append(
            f"| v{r['candidate']} | | answers from `maas promote` to 15 s after the decision | "
            f"{r['requests']} requests ({per}), {r['failed_requests']} failed |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def shares(rollout: dict[str, Any], answers: list[Answer]) -> tuple[list[float], list[float]]:
    """The candidate's share (%) of the answered requests, per BIN_S seconds."""
    t0 = epoch(rollout["started"]) if rollout["started"] else 0.0
    stop = rollout.get("t_s", 0.0) + 30
    ok = [(a[0] - t0, a[2]) for a in answers if a[1] == 200 and -20 <= a[0] - t0 <= stop]
    bins: dict[int, list[int]] = {}
    for t, version in ok:
        counted = bins.setdefault(int((t + 20) // BIN_S), [0, 0])
        counted[0] += version == rollout["candidate"]
        counted[1] += 1
    xs = [k * BIN_S - 20 + BIN_S / 2 for k in sorted(bins)]
    ys = [100 * bins[k][0] / bins[k][1] for k in sorted(bins)]
    return xs, ys


def plot(report: dict[str, Any], answers: list[Answer], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rollouts = report["rollouts"]
    figure, axes = plt.subplots(len(rollouts), 1, figsize=(8, 2.8 * len(rollouts)), squeeze=False)
    for ax, rollout, kind in zip(axes[:, 0], rollouts, ("good", "bad", ""), strict=False):
        xs, ys = shares(rollout, answers)
        ax.plot(xs, ys, ".-", color="tab:blue", lw=1, ms=4, label="candidate's share of answers")
        points = schedule(rollout)
        end = rollout.get("t_s", points[-1][0]) + 30
        ax.step(
            [p[0] for p in points] + [end],
            [p[1] for p in points] + [points[-1][1]],
            where="post",
            color="tab:orange",
            lw=1.5,
            label="step's target weight",
        )
        marks = [(s["t_s"], f"{s['passed']} passed", "tab:green") for s in rollout["steps"]]
        at = f" at {rollout['at']}" if rollout["decision"] == "rolled back" else ""
        if rollout["decision"] != "none":
            color = "tab:green" if rollout["decision"] == "promoted" else "tab:red"
            marks.append((rollout["t_s"], f"{rollout['decision']}{at}", color))
        for t, text, color in marks:
            ax.axvline(t, color=color, ls="--", lw=1)
            ax.text(t + 1, 50, text, rotation=90, va="center", fontsize=7, color=color)
        ax.set_ylim(-5, 110)
        ax.set_xlim(-20, end)
        ax.set_ylabel("% of requests")
        ax.set_title(
            f"{report['model']} v{rollout['candidate']} ({kind}) beside v{rollout['previous']}: "
            f"{rollout['decision']}{at}; {rollout['failed_requests']} failed of "
            f"{rollout['requests']} requests",
            fontsize=9,
        )
        ax.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the rollout started")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
