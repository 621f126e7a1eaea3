"""The corpus: real public tables (benchmarks/corpus_datasets.py) taken from file to served
prediction as a new user would, with `maas task init` flags only (no edit of the task file):
`task init` -> `maas run --task` -> `maas package` (or `maas serve`, BentoML without a
container, with `--no-package`) -> one POST /predict. Per table: rows, kind, the test window,
our score and time, the run's own logistic/linear regression and HistGradientBoosting baselines
(scikit-learn, same rows and features), what `task init` noted, and the first failure with its
exact message. Failures are results: the report shows them as they came.

    python benchmarks/corpus.py [--datasets a,b] [--max-rows N] [--no-package]
        [--workdir DIR] [--output reports/corpus.md]

Each table runs in a project folder of its own (its own MLflow store) under --workdir, with
params.yaml as it ships; one temporary Prefect server serves every run. `--max-rows` keeps a
seeded random sample (every period keeps its share of rows; a table's `min_rows` raises it:
the rare positive's 30,000, so that its test window holds ~100 positives, not 10).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.corpus_datasets import BY_NAME, CORPUS, Dataset  # noqa: E402
from benchmarks.corpus_report import Outcome, report_markdown  # noqa: E402

SERVE_READY_S = 180
PREDICT_ROWS = 3


def sample(frame: Any, max_rows: int | None) -> Any:
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=0).sort_index()


def maas_command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "maas.cli", *args, "-p", str(root / "params.yaml")]


def error_lines(done: subprocess.CompletedProcess[str]) -> str:
    """The lines of a failed command that say why: `error:` lines (the CLI's one-line
    message) when there are any, else the traceback's last line or Typer's usage box."""
    text = (done.stderr or "") + "\n" + (done.stdout or "")
    lines = [line.strip(" │╭╰─") for line in text.splitlines() if line.strip(" │╭╰─")]
    said = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if said:  # the CLI's message: its first line and the lines it lists
        return " / ".join(lines[said[-1] :])[:600]
    usage = [line for line in lines if "Missing option" in line or "Invalid value" in line]
    if usage:
        return " ".join(usage)
    errors = [line for line in lines if "Error" in line.split(":")[0]]
    return errors[-1] if errors else (lines[-1] if lines else f"exit {done.returncode}")


def run_step(
    outcome: Outcome,
    step: str,
    command: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float = 900,
) -> subprocess.CompletedProcess[str] | None:
    """One CLI step, timed; None (and the outcome failed at `step`) when it did not succeed."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        outcome.seconds[step] = time.monotonic() - started
        outcome.failed, outcome.error = step, f"stopped after {timeout_s:.0f} s"
        return None
    outcome.seconds[step] = time.monotonic() - started
    (cwd / f"{step}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        outcome.failed, outcome.error = step, error_lines(done)
        return None
    return done


def init_command(dataset: Dataset, root: Path, data_file: Path) -> list[str]:
    args = ["task", "init", dataset.name, "--data", str(data_file), "--label", dataset.label]
    args += ["--kind", dataset.kind, *dataset.flags]
    if dataset.time is not None:
        args += ["--time", dataset.time]
    return maas_command(root, *args)


def read_run(outcome: Outcome, stdout: str) -> dict[str, Any]:
    """The run's JSON (its last line) into the outcome."""
    from maas.config.kinds import baseline_name

    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    metrics = result.get("metrics") or {}
    outcome.metric = metrics.get("gate_metric", "")
    outcome.score = (metrics.get("test") or {}).get(outcome.metric)
    outcome.test_window = ", ".join(metrics.get("test_partitions") or [])
    outcome.test_rows = metrics.get("test_rows") or (metrics.get("test") or {}).get("rows")
    for family in ("logistic_regression", "hist_gradient_boosting"):
        name = baseline_name(family, outcome.kind)
        scores = (metrics.get("baselines") or {}).get(name) or {}
        if outcome.metric in scores:
            outcome.baselines[name] = scores[outcome.metric]
    gate = metrics.get("gate") or {}
    outcome.promoted = gate.get("promoted")
    outcome.gate = "; ".join(str(reason) for reason in gate.get("reasons") or [])
    return result


def request_rows(root: Path, task_file: Path, label: str) -> list[dict[str, Any]]:
    """The first rows of the newest partition as a client sends them: the inputs the task's
    request declares (its validated columns, less the label), in the form the partitions
    hold (dates in ISO 8601, as the request takes them, whatever the file wrote)."""
    import pandas as pd
    import yaml

    task = yaml.safe_load(task_file.read_text())
    raw_dir = root / task["data"]["raw_dir"]
    frame = pd.read_parquet(sorted(raw_dir.glob("*.parquet"))[-1])
    columns = [c for c in (task.get("validation") or {}).get("columns") or {} if c != label]
    excluded = set(task.get("data", {}).get("exclude") or [])
    keep = [c for c in columns if c in frame.columns and c not in excluded]
    rows: list[dict[str, Any]] = json.loads(
        frame[keep].head(PREDICT_ROWS).to_json(orient="records")
    )
    return rows


@contextmanager
def served(
    outcome: Outcome, root: Path, version: str, *, package: bool, env: Mapping[str, str]
) -> Iterator[str | None]:
    """The version answering HTTP: its infra-validated image in a container (`package`), or
    `maas serve` (BentoML in a process); yields the base URL, None when it did not start."""
    from maas.net import free_port
    from maas.release import containers

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if package:
        step = ["package", version, "--task", outcome.name, "--json", "--require-image"]
        done = run_step(outcome, "package", maas_command(root, *step), cwd=root, env=env)
        if done is None:
            yield None
            return
        image = json.loads(done.stdout)["image"]  # `maas package --json`: one document
        backend, _ = containers.select_backend("auto")
        runtime = containers.runtime_for(backend) if backend else None
        if runtime is None:
            outcome.failed, outcome.error = "serve", "no container runtime to run the image"
            yield None
            return
        name = containers.run_container(runtime, image, f"maas-corpus-{outcome.name}", port)
        try:
            started = time.monotonic()
            if not containers.wait_ready(base, SERVE_READY_S):
                outcome.failed = "serve"
                outcome.error = containers.container_logs(runtime, name, lines=5)
                yield None
                return
            outcome.seconds["serve"] = time.monotonic() - started
            yield base
        finally:
            containers.remove_container(runtime, name)
        return
    command = maas_command(root, "serve", version, "--task", outcome.name, "--port", str(port))
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(command, cwd=root, env=dict(env), stdout=log, stderr=log)
    try:
        started = time.monotonic()
        if not containers.wait_ready(base, SERVE_READY_S, alive=lambda: process.poll() is None):
            outcome.failed = "serve"
            said = (root / "serve.log").read_text().strip().splitlines()[-1:]
            outcome.error = " ".join(said) or f"not ready in {SERVE_READY_S} s"
            yield None
            return
        outcome.seconds["serve"] = time.monotonic() - started
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def predict(outcome: Outcome, base: str, body_key: str, rows: list[dict[str, Any]]) -> None:
    import httpx

    answer = httpx.post(f"{base}/predict", json={body_key: rows}, timeout=30)
    if answer.status_code != 200:
        outcome.failed, outcome.error = "predict", f"HTTP {answer.status_code}: {answer.text[:300]}"
        return
    predictions = answer.json()["predictions"]
    outcome.served = json.dumps(predictions[0], default=str)[:120]


def run_dataset(
    dataset: Dataset,
    *,
    workdir: Path,
    max_rows: int | None,
    package: bool,
    env: Mapping[str, str],
    run_sets: tuple[str, ...] = (),
) -> Outcome:
    """One table from file to a served prediction; stops at the first step that fails."""
    import yaml

    outcome = Outcome(dataset.name, dataset.kind)
    root = workdir / dataset.name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    started = time.monotonic()
    at_least = dataset.min_rows or 0
    frame = sample(dataset.load(), max_rows if max_rows is None else max(max_rows, at_least))
    outcome.rows, outcome.columns = frame.shape
    data_file = root / f"{dataset.name}.parquet"
    frame.to_parquet(data_file, index=False)
    outcome.seconds["load"] = time.monotonic() - started
    made = run_step(outcome, "init", init_command(dataset, root, data_file), cwd=root, env=env)
    if made is None:
        return outcome
    outcome.notes = [
        line.strip()[2:] for line in made.stdout.splitlines() if line.startswith("  - ")
    ]
    run_args = ["run", "--task", dataset.name, "--json"]
    run_args += [arg for setting in run_sets for arg in ("--set", setting)]
    done = run_step(outcome, "run", maas_command(root, *run_args), cwd=root, env=env)
    if done is None:
        return outcome
    result = read_run(outcome, done.stdout)
    version = str((result.get("registered") or {}).get("version") or "")
    if not version or not outcome.promoted:
        outcome.failed = "gate"
        outcome.error = outcome.gate or "not registered: " + json.dumps(result, default=str)[:300]
        return outcome
    task_file = root / "tasks" / f"{dataset.name}.yaml"
    body_key = (yaml.safe_load(task_file.read_text()).get("serving") or {}).get("body_key")
    with served(outcome, root, version, package=package, env=env) as base:
        if base is not None:
            predict(
                outcome, base, body_key or "records", request_rows(root, task_file, dataset.label)
            )
    return outcome


@contextmanager
def prefect_server() -> Iterator[dict[str, str]]:
    """One temporary Prefect API for every run (a `maas run` alone starts its own, ~10-20 s
    of CPU each); yields the environment the `maas` commands get."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    if os.environ.get("PREFECT_API_URL"):
        yield env
        return
    with prefect_test_harness(server_startup_timeout=120):
        yield {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def run_corpus(
    datasets: list[Dataset],
    *,
    workdir: Path,
    max_rows: int | None,
    package: bool,
    env: Mapping[str, str],
    run_sets: tuple[str, ...] = (),
) -> list[Outcome]:
    outcomes = []
    for dataset in datasets:
        try:
            outcome = run_dataset(
                dataset,
                workdir=workdir,
                max_rows=max_rows,
                package=package,
                env=env,
                run_sets=run_sets,
            )
        except Exception as error:  # a harness failure is a row too, never the end of the run
            outcome = Outcome(dataset.name, dataset.kind, failed="harness", error=repr(error))
        print(
            f"{outcome.name}: {'served' if outcome.ok else 'failed at ' + outcome.failed}"
            f" ({sum(outcome.seconds.values()):.0f} s) {outcome.error}",
            flush=True,
        )
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> list[Outcome]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="", help="names, comma-separated (default: all)")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--no-package", action="store_true", help="serve with `maas serve`")
    parser.add_argument(
        "--run-set", action="append", default=[], help="KEY=VALUE for every `maas run --set`"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary one")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "corpus.md")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown datasets {unknown}; the corpus: {', '.join(BY_NAME)}")
    chosen = [BY_NAME[n] for n in names] if names else list(CORPUS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="maas-corpus-"))
    print(f"corpus: {len(chosen)} table(s) in {workdir}", flush=True)
    with prefect_server() as env:
        outcomes = run_corpus(
            chosen,
            workdir=workdir,
            max_rows=args.max_rows,
            package=not args.no_package,
            env=env,
            run_sets=tuple(args.run_set),
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        report_markdown(
            outcomes,
            max_rows=args.max_rows,
            package=not args.no_package,
            run_sets=tuple(args.run_set),
        )
    )
    print(f"wrote {args.output}")
    return outcomes


if __name__ == "__main__":
    main()
