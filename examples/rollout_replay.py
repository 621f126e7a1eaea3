"""A month of traffic through two progressive rollouts: a good candidate and a bad one (issue 30).

In a fresh project folder: ingest the task's data, keep the months before `--month`, train the
champion (v1) and serve it with `maas watch` under `deploy.rollout.strategy: progressive`
(steps shadow, 25%, 50%, 100%; short steps). A client thread sends the month's rows through
the gateway the whole time (requests of 20 records, the label left out, key columns in),
recording each answer's time, HTTP status and model version. The month's partition arrives
(its labels known: the shadow replay's and the live steps' quality checks join the served
requests with them). Then:

- the good candidate (v2): trained again with the new month, another seed; `maas promote 2`;
- the bad candidate (v3): trained on a copy of the data whose labels are permuted within each
  partition, registered with the gate's floors and baselines off so it counts as passed;
  `maas promote 3`.

The controller decides each step; the audit trail says what it decided and why. Writes
reports/rollout-<task>.json and .md and the timeline docs/img/rollout-<task>.png
(examples/rollout_timeline.py).

    python examples/rollout_replay.py --task flight-delay --month 2013-12

(In a sandbox whose podman needs tests/e2e/containers.conf, as `make e2e` does: prefix
`CONTAINERS_CONF=tests/e2e/containers.conf`.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "examples"))

from replay_project import maas, new_project  # noqa: E402
from rollout_timeline import plot, rollout_record, write  # noqa: E402

from maas.config import load_params  # noqa: E402

BATCH = 20  # records per request
OUTCOMES = ("deployed", "rollout_rolled_back", "failed")  # how a rollout ends in the audit trail


def served(base: str, model: str) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = httpx.get(f"{base}/models/{model}", timeout=5).json()
        return entry
    except (httpx.HTTPError, ValueError):
        return {}


class Traffic(threading.Thread):
    """Sends the rows, BATCH records a request, round and round until stopped; one answer a
    row of `answers`: wall time, HTTP status (0: no answer), the version that answered."""

    def __init__(self, url: str, body_key: str, records: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.url, self.body_key, self.records = url, body_key, records
        self.answers: list[tuple[float, int, str | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        start = 0
        with httpx.Client(timeout=60) as http:
            while not self.stopping.is_set():
                batch = self.records[start : start + BATCH]
                start = (start + BATCH) % max(len(self.records) - BATCH, 1)
                try:
                    answer = http.post(self.url, json={self.body_key: batch})
                    version = answer.json().get("model_version") if answer.is_success else None
                    self.answers.append((time.time(), answer.status_code, version))
                except (httpx.HTTPError, ValueError):
                    self.answers.append((time.time(), 0, None))
                self.stopping.wait(0.05)  # ~10 requests a second leave the cores to training

    def stop(self) -> list[tuple[float, int, str | None]]:
        self.stopping.set()
        self.join(timeout=120)
        return list(self.answers)


def audit(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / ".maas" / "audit.jsonl"
    return [json.loads(line) for line in path.open()] if path.exists() else []


def wait_outcome(workdir: Path, version: str, controller: subprocess.Popen[bytes]) -> str:
    """Until the audit trail says how v`version`'s rollout ended (or it was refused)."""
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline and controller.poll() is None:
        for event in audit(workdir):
            if event.get("version") == version and event["event"] in OUTCOMES:
                return str(event["event"])
        time.sleep(2)
    raise SystemExit(f"no outcome for the rollout of v{version} (see watch.log)")


def wait_only(base: str, model: str, version: str, controller: subprocess.Popen[bytes]) -> None:
    """Until v`version` serves alone (no rollout in progress)."""
    deadline = time.monotonic() + 900
    while True:
        entry = served(base, model)
        if entry.get("state") == "serving" and entry.get("served_version") == version:
            return
        if controller.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"v{version} of {model} is not serving alone at {base}: {entry}")
        time.sleep(2)


def gate_passed(workdir: Path, tracking_uri: str | None, model: str, version: str) -> bool:
    from mlflow import MlflowClient

    uri = tracking_uri or f"sqlite:///{workdir / '.maas' / 'mlflow.db'}"
    tags = MlflowClient(uri, registry_uri=uri).get_model_version(model, version).tags
    return tags.get("gate_passed") == "true"


def shuffled_copy(raw: Path, to: Path, label: str) -> None:
    """Each partition with its label column permuted: the inputs as they are, the labels noise."""
    to.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for partition in sorted(raw.glob("*.parquet")):
        frame = pd.read_parquet(partition)
        frame[label] = rng.permutation(frame[label].to_numpy())
        frame.to_parquet(to / partition.name, index=False)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="flight-delay")
    parser.add_argument("--month", default="2013-12", help="the replayed month (YYYY-MM)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(f"/tmp/maas-rollout-{args.task}")
    base = new_project(workdir)
    settings = [
        f"deploy.address={base.removeprefix('http://')}",
        "deploy.webhook_listen=null",
        "model.kind=mlp",  # minutes per model on a CPU
        "train.max_epochs=4",
        # the baselines are the gate's business, not this example's: a short MLP may tie the
        # logistic regression (v1 lost by 0.0002 ROC AUC once); floors and regression stay
        "promotion.must_beat=[prior]",
        "deploy.rollout.strategy=progressive",
        "deploy.rollout.steps=[shadow, 25, 50, 100]",
        "deploy.rollout.min_seconds=20",
        "deploy.rollout.min_requests=100",
        *args.overrides,
    ]
    sets = [a for s in settings for a in ("--set", s)]
    task = ["--task", args.task]
    params = load_params(workdir / "params.yaml", settings, args.task)
    model, label = params.registry.model_name, params.data.label.column
    raw = workdir / params.data.raw_dir
    maas(workdir, "ingest", *task, "--no-dvc-add", *sets)
    later = workdir / "later"
    later.mkdir()
    for partition in sorted(raw.glob("*.parquet")):
        if partition.stem >= args.month:
            shutil.move(partition, later / partition.name)
    month = later / f"{args.month}.parquet"
    if not month.exists():
        raise SystemExit(f"{args.task} has no partition {args.month} in {raw}")
    print(f"v1: trained on the months before {args.month}", flush=True)
    maas(workdir, "run", *task, *sets)
    log = (workdir / "watch.log").open("ab")
    project = ["-p", str(workdir / "params.yaml")]
    controller = subprocess.Popen(
        [sys.executable, "-m", "maas.cli", "watch", "--interval", "2", *task, *project, *sets],
        cwd=workdir,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    frame = pd.read_parquet(month)
    records = json.loads(frame.drop(columns=[label]).to_json(orient="records"))
    traffic = Traffic(f"{base}/models/{model}/predict", params.serving.body_key, records)
    promoted: dict[str, float] = {}
    notes: list[str] = []
    try:
        wait_only(base, model, "1", controller)
        traffic.start()
        time.sleep(30)  # served requests in the prediction log before their labels arrive
        shutil.move(month, raw / month.name)  # the month's labels arrive
        print("v2 (good): trained with the new month, seed 7", flush=True)
        good = ["train.seed=7", "promotion.auto_promote=false"]
        maas(workdir, "run", *task, *sets, *[a for s in good for a in ("--set", s)])
        if not gate_passed(workdir, params.registry.tracking_uri, model, "2"):
            why = "the example's good candidate (its gate failed on the replayed month)"
            maas(workdir, "approve", "2", "--reason", why, *sets)
            notes.append(f"v2: the gate failed, approved by hand: {why}")
        promoted["2"] = time.time()
        maas(workdir, "promote", "2", *sets)
        print(f"v2: {wait_outcome(workdir, '2', controller)}", flush=True)
        wait_only(base, model, "2", controller)

        print("v3 (bad): labels permuted within each partition, gate off", flush=True)
        shuffled_copy(raw, workdir / "data" / "raw-shuffled", label)
        bad = [
            "data.raw_dir=data/raw-shuffled",
            "promotion.must_beat=[]",
            "promotion.floors={}",
            "promotion.floors_optional_absent={}",
            "promotion.max_regression=1",
            "promotion.auto_promote=false",
        ]
        maas(workdir, "run", *task, *sets, *[a for s in bad for a in ("--set", s)])
        promoted["3"] = time.time()
        maas(workdir, "promote", "3", *sets)
        print(f"v3: {wait_outcome(workdir, '3', controller)}", flush=True)
        wait_only(base, model, "2", controller)
        time.sleep(10)
    finally:
        answers = traffic.stop() if traffic.is_alive() else list(traffic.answers)
        os.killpg(controller.pid, signal.SIGTERM)
        controller.wait(timeout=120)
        maas(workdir, "undeploy", "--all", *sets)
    (workdir / "answers.json").write_text(json.dumps({"promoted": promoted, "answers": answers}))
    events = audit(workdir)
    report = {
        "task": args.task,
        "model": model,
        "month": args.month,
        "settings": settings[2:],
        "requests": len(answers),
        "failed_requests": sum(1 for _, status, _ in answers if status != 200),
        "notes": notes,
        "rollouts": [
            rollout_record(version, promoted[version], events, answers) for version in promoted
        ],
    }
    stem = ROOT / "reports" / f"rollout-{args.task}"
    write(report, stem)
    plot(report, answers, ROOT / "docs" / "img" / f"rollout-{args.task}.png")
    return report


if __name__ == "__main__":
    main()
