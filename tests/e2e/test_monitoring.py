"""The loop closed on real data. `maas watch` serves the flight-delay champion (trained on
October, tested on November) in a container behind the gateway, and the container logs every
prediction. December's flights are replayed through the gateway with their key columns; then
December's partition arrives with its labels. `maas monitor` judges November (arrived, nothing
served: re-scored) and December (served inputs and arrived partition against October, realized
ROC AUC of the logged predictions joined with the labels), alerts on the breach the policy
names, and retrains; the new version faces the gate, and the controller deploys it only if it
is champion. The audit trail holds the chain alert -> retraining -> version -> gate -> deploy."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from maas.config import load_params
from maas.monitor.predictions import LogColumns, read_predictions
from maas.net import free_port
from tests.e2e.helpers import (
    FAST,
    Process,
    container_runtime_or_skip,
    copy_months,
    serving_version,
)
from tests.e2e.task_projects import maas
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEYS = ["year", "month", "day", "carrier", "flight", "origin"]


def test_served_predictions_are_judged_and_a_breach_retrains(tmp_path: Path, real_months) -> None:
    root = tmp_path
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks")
    raw = copy_months(real_months, root / "raw", ["2013-10", "2013-11"])
    base = f"http://127.0.0.1:{free_port()}"
    settings = [
        *FAST,
        f"data.raw_dir={raw}",
        f"deploy.address={base.removeprefix('http://')}",
        "deploy.webhook_listen=null",
    ]
    sets = [a for s in settings for a in ("--set", s)]
    maas(root, "run", "--task", "flight-delay", *sets)
    container_runtime_or_skip()
    watch = [
        sys.executable,
        "-m",
        "maas.cli",
        "watch",
        "--interval",
        "2",
        "--task",
        "flight-delay",
        "-p",
        str(root / "params.yaml"),
        *sets,
    ]
    controller = Process(root, [], command=watch, name="watch-monitor", cwd=root)
    try:
        deadline = time.monotonic() + 600  # the image is built, unless an earlier test did
        while serving_version(base) != "1":
            assert time.monotonic() < deadline, controller.tail()
            assert controller.process.poll() is None, controller.tail()
            time.sleep(2)

        # December's flights replayed through the gateway, key columns included
        december = pd.read_parquet(real_months / "2013-12.parquet").sample(1200, random_state=3)
        records = json.loads(december.drop(columns=["arr_delay"]).to_json(orient="records"))
        with httpx.Client(timeout=30) as http:
            for start in range(0, 1000, 100):  # bulk requests
                answer = http.post(
                    f"{base}/models/flight-delay/predict",
                    json={"flights": records[start : start + 100]},
                )
                assert answer.status_code == 200, answer.text
            for record in records[1000:]:  # single-record requests, at /
                assert http.post(f"{base}/predict", json={"flights": [record]}).status_code == 200
            assert http.post(f"{base}/predict", json={"flights": [{}]}).status_code == 400
            metrics = http.get(f"{base}/models/flight-delay/metrics").text
        folder = root / ".maas" / "predictions" / "flight-delay"
        columns = LogColumns.of(load_params(root / "params.yaml", settings, "flight-delay"))
        deadline = time.monotonic() + 10  # a served line reaches the file within a second
        while len(logged := read_predictions(folder, "flights", columns).frame) < 1200:
            assert time.monotonic() < deadline, len(logged)
            time.sleep(0.5)
        logged = read_predictions(folder, "flights", columns)
        replayed = logged.frame[logged.frame["flight"].notna()]  # not the readiness probes
        assert len(replayed) == 1200 and logged.skipped == 0  # the 400 is not a prediction
        assert set(KEYS) <= set(logged.frame.columns)  # the keys the client sent are logged
        lines = b"".join(path.read_bytes() for path in folder.iterdir())
        assert b'"tailnum"' not in lines and b'"arr_time"' not in lines  # fields of no use
        assert set(logged.frame["model_version"]) == {"1"}
        assert "maas_prediction_log_lost_total 0.0" in metrics

        # December's labels arrive; the policy (tightened for one month) finds a breach
        maas(root, "data", "add-next", "--task", "flight-delay", "--no-dvc-add", *sets)
        policy = ["monitoring.drift_share=0.1", "monitoring.retrain=true"]
        judged = json.loads(
            maas(
                root,
                "monitor",
                "--task",
                "flight-delay",
                "--json",
                *sets,
                *[a for s in policy for a in ("--set", s)],
            ).stdout
        )
        periods = {p["period"]: p for p in judged["periods"]}
        probes = [p for name, p in periods.items() if not name.startswith("2013-")]
        assert all(not p["judged"] and p["served_rows"] < 50 for p in probes)  # served today
        assert sorted(set(periods) - {p["period"] for p in probes}) == ["2013-11", "2013-12"]
        november, dec = periods["2013-11"], periods["2013-12"]
        assert november["served_rows"] == 0 and november["realized"]["source"] == "rescored"
        assert dec["served_rows"] == 1200 and dec["arrived_rows"] == len(
            pd.read_parquet(raw / "2013-12.parquet")
        )
        assert dec["realized"]["source"] == "logged" and dec["realized"]["unmatched"] == 0
        assert dec["realized"]["rows"] + dec["realized"]["unlabeled"] == 1200
        # trained on October alone (2 epochs), tested on November: December is worse (~0.59)
        assert 0.5 < dec["realized"]["metrics"]["roc_auc"] < 0.85
        assert dec["registered"]["metric"] == "roc_auc" and dec["registered"]["value"] > 0.6
        assert "temp" in dec["served_drift"]["drifted"] + dec["arrived_drift"]["drifted"]
        assert any(b["period"] == "2013-12" for b in judged["new_breaches"])
        assert judged["training"]["version"] == "2"
        print("December:", {k: dec[k] for k in ("served_drift", "arrived_drift", "realized")})
        print("retrained:", judged["training"])

        chain = audit_chain(root)
        assert chain[0] == "monitor_alert", chain
        start = chain.index("monitor_retrain")
        # v2 trained on October and November beats v1 (October alone) on December: the gate
        # promotes it, and the controller deploys it as it deploys any promotion
        assert "champion" in judged["training"]["aliases"], judged["training"]
        wait = time.monotonic() + 600
        while serving_version(base) != "2":
            assert time.monotonic() < wait, controller.tail()
            time.sleep(2)
        while "deployed" not in audit_chain(root)[start:]:  # written after the old drains
            assert time.monotonic() < wait, controller.tail()
            time.sleep(1)
        chain = audit_chain(root)[start:]
        assert chain[:2] == ["monitor_retrain", "promoted"], chain
        assert {"monitor_retrained", "deployed"} <= set(chain[2:]), chain
        status = json.loads(maas(root, "status", "--task", "flight-delay", "--json", *sets).stdout)
        assert [p["period"] for p in status["monitoring"]][:2] == ["2013-11", "2013-12"]

        # a new champion: December is judged again, against its own window
        again = json.loads(maas(root, "monitor", "--task", "flight-delay", "--json", *sets).stdout)
        assert {p["champion"] for p in again["periods"]} == {"2"}
        assert "2013-12" in [p["period"] for p in again["periods"]]
    finally:
        controller.stop()
        maas(root, "undeploy", "--all", *sets)


def audit_chain(root: Path) -> list[str]:
    """The monitoring events and v2's events, in the order they were written."""
    events = [json.loads(line) for line in (root / ".maas" / "audit.jsonl").open()]
    return [
        e["event"] for e in events if e["event"].startswith("monitor_") or e.get("version") == "2"
    ]


def test_a_killed_pass_resumes_and_nothing_is_counted_twice(
    real_months, prefect_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry of its own (the shared one's champion moves in other tests): v1 trained on
    October-November, December tests it; served records of November and December written by
    the service's own log writer, plus a torn line. A pass killed after its first period leaves
    that period recorded; the next pass judges only the rest; more evidence re-judges a period
    into the same MLflow run."""
    import tempfile

    from maas.flows.training import training

    from maas.config import load_params
    from maas.monitor import run
    from maas.monitor.judge import open_champion
    from maas.monitor.state import read_state
    from maas.serving.prediction_log import PredictionLog
    from maas.tracking.store import connect
    from tests.e2e.helpers import PARAMS, overrides_for

    raw = copy_months(real_months, tmp_path / "raw")
    overrides = [
        *overrides_for(tmp_path, raw),
        "registry.model_name=monitor-kill",
        f"deploy.state_dir={tmp_path / 'deploy'}",
        f"deploy.audit_log={tmp_path / 'audit.jsonl'}",
    ]
    training(params_file=PARAMS, overrides=overrides)
    quiet = ["monitoring.min_rows=50", "monitoring.drift_share=1", "monitoring.metric_drop=1"]
    folders = [
        f"monitoring.log_dir={tmp_path / 'logs'}",
        f"monitoring.state_dir={tmp_path / 'state'}",
    ]
    params = load_params(PARAMS, [*overrides, *folders, *quiet])
    client = connect(params.registry)
    raw = params.data.raw_dir
    writer = PredictionLog(
        tmp_path / "logs" / params.registry.model_name, params.registry.model_name, "1", 1 << 20, 2
    )
    with tempfile.TemporaryDirectory() as folder:
        champion = open_champion(params, client, Path(folder))
        assert champion is not None and champion.version == "1"

        def serve(month: str, rows: int, seed: int) -> None:
            frame = pd.read_parquet(raw / f"{month}.parquet").sample(rows, random_state=seed)
            probabilities = champion.score(frame)
            records = json.loads(frame.drop(columns=["arr_delay"]).to_json(orient="records"))
            for start in range(0, rows, 50):
                chunk = probabilities[start : start + 50]
                predictions = [
                    {"delay_probability": float(p), "delayed": bool(p >= 0.5), "unknown_inputs": []}
                    for p in chunk
                ]
                response = {"model_version": "1", "predictions": predictions}
                request = {"flights": records[start : start + 50]}
                writer.write(json.dumps(request).encode(), json.dumps(response).encode())

        serve("2013-11", 300, 1)
        serve("2013-12", 300, 2)
    writer.close()
    with writer.path.open("ab") as log:  # the service killed mid-line
        log.write(b'{"time": "2026-11-30T10:00:00+00:00", "request_id": "torn", "mod')

    judged: list[str] = []
    real = run.judge_period

    def killed_after_one(*args, **kwargs):
        if judged:
            raise KeyboardInterrupt("killed midway")
        judged.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "judge_period", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run.monitor_task(params)
    assert sorted(read_state(params.monitoring.state_dir, params.task)["periods"]) == ["2013-11"]
    monkeypatch.setattr(run, "judge_period", real)

    resumed = run.monitor_task(params)
    assert [p["period"] for p in resumed.periods] == ["2013-12"] and resumed.skipped_lines == 1
    december = resumed.periods[0]
    assert december["served_rows"] == 300 and december["realized"]["source"] == "logged"
    assert december["realized"]["rows"] + december["realized"]["unlabeled"] == 300
    assert not december["breaches"] and december["judged"]
    state = read_state(params.monitoring.state_dir, params.task)["periods"]
    assert state["2013-11"]["realized_note"].startswith("the champion trained on this period")
    assert run.monitor_task(params).periods == []  # the same evidence: nothing judged again

    experiment = client.get_experiment_by_name(f"{params.registry.experiment}-monitoring")
    before = {r.info.run_id for r in client.search_runs([experiment.experiment_id])}
    assert len(before) == 2
    with tempfile.TemporaryDirectory() as folder:
        champion = open_champion(params, client, Path(folder))
        writer = PredictionLog(writer.path.parent, params.registry.model_name, "1", 1 << 20, 2)
        serve("2013-12", 100, 3)  # more December traffic, from the restarted service
    writer.close()  # its last lines reach the file (a running service: within FLUSH_S)
    again = run.monitor_task(params)
    assert [(p["period"], p["served_rows"]) for p in again.periods] == [("2013-12", 400)]
    after = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in after} == before  # the same run, updated
    assert {r.data.metrics["served_rows"] for r in after} == {300.0, 400.0}

    gone = load_params(
        PARAMS,
        [
            *overrides,
            f"data.raw_dir={tmp_path / 'empty'}",
            f"monitoring.log_dir={tmp_path / 'logs'}",
            f"monitoring.state_dir={tmp_path / 'state2'}",
        ],
    )
    outcome = run.monitor_task(gone)
    assert outcome.status.startswith("no reference window yet: the champion's training window")
    assert outcome.periods == []
