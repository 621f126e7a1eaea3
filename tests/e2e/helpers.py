"""End-to-end helpers: real-data settings, `maas` commands as processes, waiting for a version
to serve. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.helpers import ROOT, missing

MONTHS = ["2013-10", "2013-11", "2013-12"]
TRAINED_MODEL = "delay-pkg"  # its own BentoML model names, apart from the unit tests'
PARAMS = str(ROOT / "params.yaml")
FLIGHT = {
    "month": 12,
    "day": 3,
    "sched_dep_time": 900,
    "sched_arr_time": 1200,
    "carrier": "AA",
    "origin": "JFK",
    "dest": "LAX",
    "distance": 2475,
}


def copy_months(source: Path, target: Path, months: list[str] = MONTHS) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for month in months:
        shutil.copy(source / f"{month}.parquet", target / f"{month}.parquet")
    return target


# Small, fast flight-delay training: 2 epochs of the MLP on the CPU, floors for 2 months of
# data, and no HistGradientBoosting (seconds per evaluation on 2 cores: only the pipeline's own
# tests, tests/e2e/test_pipeline.py, keep it)
FAST = [
    "model.kind=mlp",  # the task's TabM takes ~11 min per epoch on 2 cores
    "train.max_epochs=2",
    "train.device=cpu",
    "evaluate.baselines=[prior, logistic_regression]",
    "promotion.floors.roc_auc=0.6",
    "promotion.floors_optional_absent.roc_auc=0.5",
    "promotion.must_beat=[prior]",
]


def overrides_for(root: Path, raw_dir: Path) -> list[str]:
    """Small, fast settings pointing every output into `root` (the registry too)."""
    return [
        *FAST,
        f"data.raw_dir={raw_dir}",
        f"data.processed_dir={root / 'processed'}",
        f"validation.reports_dir={root / 'reports' / 'validation'}",
        f"validation.cache_dir={root / 'validation-cache'}",
        f"train.models_dir={root / 'models'}",
        f"train.checkpoint_dir={root / 'checkpoints'}",
        f"evaluate.metrics_path={root / 'reports' / 'metrics.json'}",
        f"evaluate.plots_dir={root / 'reports' / 'plots'}",
        f"promotion.verdict_key_file={root / 'gate.key'}",
        f"registry.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"registry.artifact_root={root / 'mlartifacts'}",
    ]


def container_runtime_or_skip() -> str:
    """The CLI that runs images here (a missing one: `tests.helpers.missing`)."""
    from maas.release import containers

    backend, reasons = containers.select_backend("auto")
    runtime = containers.runtime_for(backend) if backend else None
    if runtime is None:
        missing("containers", f"no container backend here ({'; '.join(reasons)})")
    return runtime


def session_env() -> dict[str, str]:
    """This process's environment plus the Prefect API it runs flows on (the session's test
    server), so a `maas` subprocess uses that server instead of starting a temporary one of its
    own: ~10 s of CPU per process, and on a busy 2-core machine it can miss Prefect's start-up
    timeout. One controller runs without it (its own temporary server, as on a fresh machine):
    test_promotion's failed-build controller."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    env = {**os.environ, "PREFECT_API_URL": api} if api else dict(os.environ)
    # mlflow.set_tracking_uri in an earlier test of this process exports MLFLOW_TRACKING_URI:
    # a project's `maas` must use its own store (its params), not that one
    for inherited in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(inherited, None)
    return env


class Process:
    """A `maas` command in its own process (`maas watch`, `maas ui`)."""

    def __init__(
        self, root, overrides, *args: str, env=None, command=None, name=None, cwd=None
    ) -> None:
        sets = [arg for item in overrides for arg in ("--set", item)]
        self.log_path = root / f"{name or args[0]}.log"
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "maas.cli", *args, "-p", PARAMS, *sets],
            stdout=self.log,
            stderr=self.log,
            cwd=cwd or os.getcwd(),
            start_new_session=True,
            env=env if env is not None else session_env(),
        )

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL to the process and its children (its temporary Prefect server): a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()


def Controller(
    root, overrides, interval: str = "1", name: str = "watch", env=None, task="flight-delay"
) -> Process:
    """`maas watch` of one task (the overrides name one model), or of every task (None)."""
    chosen = ["--task", task] if task else []
    return Process(root, overrides, "watch", "--interval", interval, *chosen, name=name, env=env)


def serving_version(endpoint: str) -> str | None:
    try:
        response = httpx.post(f"{endpoint}/predict", json={"flights": [FLIGHT]}, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json().get("model_version") if response.status_code == 200 else None


def wait_for_version(endpoint: str, version: str, timeout: float = 240) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if serving_version(endpoint) == version:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"v{version} did not serve at {endpoint} within {timeout}s")


def wait_for_line(process: Process, text: str, timeout: float = 60, after: int = 0) -> None:
    """Wait until `text` appears in the process's log past offset `after` (an event the
    process reports, instead of a sleep that hopes it happened)."""
    deadline = time.monotonic() + timeout
    while text not in process.log_path.read_text(errors="replace")[after:]:
        assert time.monotonic() < deadline, f"{text!r} not logged: {process.tail()}"
        time.sleep(0.2)


class Load:
    """One client thread posting `FLIGHT` to `endpoint`/predict until stopped (or, given
    `records`, requests of `per_request` of them in turn), counting each outcome: the version
    that answered, `http <status>`, or the transport error's name. Any other exception ends
    the loop and is raised again by `stop()`: a dead load thread fails the test instead of
    leaving an empty count that passes it."""

    def __init__(
        self, endpoint: str, records: list[dict] | None = None, per_request: int = 10
    ) -> None:
        from collections import Counter

        self.url = f"{endpoint}/predict"
        records = records or [FLIGHT]
        step = per_request if len(records) > 1 else 1
        self.bodies = [
            {"flights": records[start : start + step]} for start in range(0, len(records), step)
        ]
        self.outcomes: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=5) as http:
                for sent in itertools.count():
                    if self._stop.is_set():
                        break
                    try:
                        response = http.post(self.url, json=self.bodies[sent % len(self.bodies)])
                    except httpx.HTTPError as error:
                        self.outcomes[type(error).__name__] += 1
                        continue
                    if response.is_success:
                        self.outcomes[str(response.json()["model_version"])] += 1
                    else:
                        self.outcomes[f"http {response.status_code}"] += 1
        except BaseException as error:
            self.error = error

    def stop(self) -> dict[str, int]:
        self.__exit__()
        assert not self._thread.is_alive(), "the load thread did not stop"
        if self.error is not None:
            raise AssertionError(f"the load thread died: {self.error!r}") from self.error
        return dict(self.outcomes)

    def assert_served_only(self, versions: set[str], at_least: int) -> dict[str, int]:
        """Stop; every request was answered by one of `versions`, each of them answered at
        least once, and at least `at_least` requests were made."""
        seen = self.stop()
        assert set(seen) <= versions, f"failed requests: {seen}"
        assert versions <= set(seen), f"not every version answered: {seen}"
        assert sum(seen.values()) >= at_least, f"too few requests to tell: {seen}"
        return seen


def register_again(overrides: list[str], *, passed: bool, promoted: bool, why: str) -> str:
    """A new signed version of the model the project trained last, registered with the gate
    verdict given here instead of training again: for tests of what happens after the
    registry (promotion, deploys), where the weights do not matter. Returns its number."""
    import dataclasses
    import json

    from maas.config import load_params
    from maas.pipeline.evaluation.gate import GateDecision
    from maas.pipeline.evaluation.result import Evaluation
    from maas.pipeline.register import register_model
    from maas.tracking.runs import start_pipeline_run

    params = load_params(PARAMS, overrides)
    evaluation = Evaluation.from_json(json.loads(params.evaluate.metrics_path.read_text()))
    gate = GateDecision(passed=passed, promoted=promoted, reasons=[why])
    tracking = start_pipeline_run(params.registry, params.model_dump(mode="json"), params.digest())
    with tracking.recording_outcome():
        registered = register_model(
            data=params.data,
            models_dir=params.train.models_dir,
            metrics=dataclasses.replace(evaluation, gate=gate),
            registry=params.registry,
            tracking=tracking,
            params_digest=params.digest(),
            verdict_key_file=params.promotion.verdict_key_file,
        )
    return registered.version


def register_inverted(overrides: list[str], *, why: str) -> str:
    """A real version of worse quality, without training again: the project's trained MLP with
    its output layer negated, so it ranks flights backwards (ROC AUC 1 - the trained one's),
    its ONNX graph exported again, registered signed with a passed verdict (as a gate judged
    on stale data, or a person, might let through). It answers as fast as the trained model
    and never with an error: only its quality tells it apart. Returns its number."""
    import numpy as np
    import torch

    from maas.config import load_params
    from maas.pipeline.training.export import export_onnx, load_weights, save_weights
    from maas.pipeline.training.model import ModelConfig, TabularNet
    from maas.serving.inference import MODEL_CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE

    source = load_params(PARAMS, overrides).train.models_dir
    models = source.parent / f"{source.name}-inverted"
    shutil.rmtree(models, ignore_errors=True)
    shutil.copytree(source, models)
    config = ModelConfig.load(models / MODEL_CONFIG_FILE)
    network = load_weights(config, models / WEIGHTS_FILE)
    assert isinstance(network, TabularNet) and config.head == "binary", config
    output = network.mlp[-1]
    with torch.no_grad():
        output.weight.neg_()
        output.bias.neg_()
    save_weights(network, models / WEIGHTS_FILE)
    categorical = np.zeros((4, len(config.cardinalities)), dtype=np.int64)
    export_onnx(network, models / ONNX_FILE, categorical, np.zeros((4, config.numeric_dim)))
    inverted = [*overrides, f"train.models_dir={models}"]
    return register_again(inverted, passed=True, promoted=False, why=why)
