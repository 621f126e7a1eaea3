"""Replay a year through the served model and let the monitoring flow judge it (issue 14).

In a fresh project folder: ingest the task's data, keep the months up to the first replayed
one (the champion trains on the months before it and is tested on it), train, and serve the
champion with `maas watch` (container + gateway, prediction log on). Then, month by month: the
month's rows are sent through the gateway as requests (key columns included), the month's
labels arrive as a partition, and `maas monitor` judges it (drift of what was served and of
what arrived against the champion's training window, realized quality of the logged
predictions joined with the labels) and acts by policy (alert; retrain when new labels
arrived; the gate decides; the controller deploys only champions). Prints and writes the
per-month table (reports/monitoring-<task>.json and .md) and the audit chain.

    python examples/monitoring_replay.py --task flight-delay --first 2013-07 --rows 5000
    python examples/monitoring_replay.py --task hotel-rates --first 2017-05 --rows 1500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "examples"))

from replay_project import maas, new_project  # noqa: E402

from maas.config import load_params  # noqa: E402
from maas.monitor.report import short  # noqa: E402


def served_version(base: str, model: str) -> str | None:
    try:
        entry = httpx.get(f"{base}/models/{model}", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return entry.get("served_version") if entry.get("state") == "serving" else None


def wait_serving(base: str, model: str, version: str, controller: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 900
    while served_version(base, model) != version:
        if controller.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"v{version} of {model} is not serving at {base}")
        time.sleep(2)


def replay(base: str, model: str, body_key: str, frame: pd.DataFrame, label: str) -> float:
    """The month's rows as requests of 100 records (the label left out); seconds taken."""
    records = json.loads(frame.drop(columns=[label]).to_json(orient="records"))
    started = time.monotonic()
    with httpx.Client(timeout=60) as http:
        for start in range(0, len(records), 100):
            answer = http.post(
                f"{base}/models/{model}/predict", json={body_key: records[start : start + 100]}
            )
            answer.raise_for_status()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="flight-delay")
    parser.add_argument("--first", required=True, help="the first replayed month (YYYY-MM)")
    parser.add_argument("--months", type=int, default=6, help="months replayed")
    parser.add_argument("--rows", type=int, default=5000, help="rows replayed per month")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra params overrides for every command (a.b=v)",
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(f"/tmp/maas-replay-{args.task}")
    base = new_project(workdir)
    settings = [
        f"deploy.address={base.removeprefix('http://')}",
        "deploy.webhook_listen=null",
        "monitoring.retrain=true",
        "monitoring.cooldown_h=0",
        "model.kind=mlp",  # retrains in minutes (--set model.kind=tabm model.cpu_kind=tabm wins)
        *args.overrides,
    ]
    sets = [a for s in settings for a in ("--set", s)]
    task = ["--task", args.task]
    params = load_params(workdir / "params.yaml", settings, args.task)
    raw = workdir / params.data.raw_dir
    maas(workdir, "ingest", *task, "--no-dvc-add", *sets)
    later = workdir / "later"
    later.mkdir()
    months = sorted(p.stem for p in raw.glob("*.parquet"))
    replayed = [m for m in months if m >= args.first][: args.months]
    for month in months:
        if month > args.first:
            shutil.move(raw / f"{month}.parquet", later / f"{month}.parquet")
    maas(workdir, "run", *task, *sets)
    model, label = params.registry.model_name, params.data.label.column
    log = (workdir / "watch.log").open("ab")
    controller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maas.cli",
            "watch",
            "--interval",
            "2",
            *task,
            "-p",
            str(workdir / "params.yaml"),
            *sets,
        ],
        cwd=workdir,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        wait_serving(base, model, "1", controller)
        for month in replayed:
            source = (
                raw / f"{month}.parquet"
                if (raw / f"{month}.parquet").exists()
                else (later / f"{month}.parquet")
            )
            frame = pd.read_parquet(source)
            sample = frame.sample(min(args.rows, len(frame)), random_state=0)
            serving = served_version(base, model)
            seconds = replay(base, model, params.serving.body_key, sample, label)
            time.sleep(2)  # served lines reach the log within a second
            if source.parent == later:  # the month's labels arrive
                shutil.move(source, raw / source.name)
            result = json.loads(maas(workdir, "monitor", *task, "--json", *sets))
            period = next((p for p in result["periods"] if p["period"] == month), None)
            row = summarize(month, serving, len(sample), seconds, period, result)
            rows.append(row)
            print(json.dumps(row))
            trained = result.get("training")
            if trained and "champion" in trained["aliases"]:
                wait_serving(base, model, trained["version"], controller)
        audit = [json.loads(line) for line in (workdir / ".maas" / "audit.jsonl").open()]
    finally:
        os.killpg(controller.pid, signal.SIGTERM)
        controller.wait(timeout=120)
        maas(workdir, "undeploy", "--all", *sets)
    chain = [{k: e.get(k) for k in ("ts", "event", "version", "actor", "reason")} for e in audit]
    report = {
        "task": args.task,
        "model": model,
        "rows_per_month": args.rows,
        "months": rows,
        "audit": chain,
    }
    write(report, ROOT / "reports" / f"monitoring-{args.task}")
    return report


def summarize(
    month: str,
    serving: str | None,
    sent: int,
    seconds: float,
    period: dict[str, Any] | None,
    result: dict[str, Any],
) -> dict[str, Any]:
    period = period or {}
    realized = period.get("realized") or {}
    registered = period.get("registered") or {}
    trained = result.get("training")
    breaches = [b["reason"] for b in result["new_breaches"] if b["period"] == month]
    if trained:
        verdict = "champion" if "champion" in trained["aliases"] else "not promoted"
        action = f"retrained: v{trained['version']} {verdict}"
    elif result["new_breaches"]:
        action = f"alert; {result['retrain']}"
    else:
        action = "-"
    return {
        "month": month,
        "served_by": serving,
        "requests_records": sent,
        "replay_s": round(seconds, 1),
        "served_drift": (period.get("served_drift") or {}).get("share"),
        "served_drifted": (period.get("served_drift") or {}).get("drifted"),
        "arrived_drift": (period.get("arrived_drift") or {}).get("share"),
        "realized": realized.get("metrics"),
        "realized_source": realized.get("source"),
        "registered": registered,
        "breaches": [short(b) for b in breaches or period.get("breaches") or []],
        "action": action,
    }


def write(report: dict[str, Any], stem: Path) -> None:
    """The report as JSON and as the docs' Markdown table."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    metric = next((r["registered"]["metric"] for r in report["months"] if r["registered"]), "")
    lines = [
        f"| month | served by | served drift (columns) | arrived drift | realized {metric} "
        f"| champion's test {metric} | breach | action |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["months"]:
        lines.append("| " + " | ".join(table_row(r, metric)) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table_row(r: dict[str, Any], metric: str) -> list[str]:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    served = percent(r["served_drift"])
    if r["served_drifted"]:
        served += f" ({', '.join(r['served_drifted'])})"
    realized = (r["realized"] or {}).get(metric)
    shown = "-" if realized is None else f"{realized:.4f}"
    if r["realized"] and "rmse" in r["realized"]:
        shown += f" (RMSE {r['realized']['rmse']:.2f})"
    registered = r["registered"].get("value")
    return [
        r["month"],
        f"v{r['served_by']}",
        served,
        percent(r["arrived_drift"]),
        shown,
        "-" if registered is None else f"{registered:.4f}",
        ", ".join(r["breaches"]) or "-",
        r["action"],
    ]


if __name__ == "__main__":
    main()
