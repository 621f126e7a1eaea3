"""Promotion latency: alias set → the new version answering at the stable address, against a
bare `bentoml containerize` + container start of a Bento.

One project (the task's newest three partitions: for flight-delay Oct–Nov train, December
test; 2 epochs): v1 is trained and served by a real
`maas watch` controller (polling every second; webhooks off), then two more versions are
trained. Measured in one run, both with the dependency layers of the image already cached
(the v1 build filled the cache) and a model layer that is new to the cache:

- ours, never packaged (a controller with `packaging.prepare_newest=0`):
  `MlflowClient.set_registered_model_alias(champion → v2)`, as a person in the MLflow UI
  would, until `/predict` at the stable address answers with model_version 2. In between the
  controller notices the move, downloads and sha256-checks the version, builds the Bento and
  the image, infra-validates it (a container replaying 200 stored test records against the
  pyfunc, 200 timed requests), starts the serving container, checks it, switches.
- bare: for v3, with its Bento already built (untimed): `bentoml.container.build(...)` (what
  `bentoml containerize` runs) + `podman run` until `/predict` answers.
- ours, packaged ahead (the shipped setting): a controller with the default
  `packaging.prepare_newest=1` packages v3 while idle; once that is done, champion → v3 until
  v3 answers: the release reuses the signed image and validation, starts, checks, switches.

    python benchmarks/promotion.py [--raw-dir data/raw] [--task NAME] [--output ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from maas.cli.logs import LOG_FILE
from maas.net import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARTITIONS = 3  # the newest: two train, one tests (flight-delay: Oct-Nov, December)


def served_version(predict_url: str, body: dict[str, Any]) -> str | None:
    try:
        response = httpx.post(predict_url, json=body, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json().get("model_version") if response.status_code == 200 else None


def wait_for(
    predict_url: str, body: dict[str, Any], version: str, started: float, timeout: float = 600
) -> float:
    while time.perf_counter() - started < timeout:
        if served_version(predict_url, body) == version:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise RuntimeError(f"v{version} did not answer at {predict_url} within {timeout:.0f}s")


def maas(root: Path, sets: list[str], *args: str, task: str | None = None) -> None:
    flags = [arg for item in sets for arg in ("--set", item)] + (["--task", task] if task else [])
    done = subprocess.run(
        [str(BIN / "maas"), *args, "-p", str(root / "params.yaml"), *flags],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"maas {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    parser.add_argument("--task", default=None, help="the task (default: params.yaml's)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    from mlflow import MlflowClient

    from maas.config import load_params, read_raw
    from maas.operate.prefect_server import stop_server
    from maas.release import containers
    from maas.release.bento import build_bento, create_bento_model
    from maas.release.containers import wait_ready
    from maas.release.images import build_options
    from maas.serving.inference import request_spec
    from maas.tracking.registry import download_serving_code, resolve_version, version_digests
    from maas.tracking.serving_code import DIGEST_TAG

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on `kill` too
    backend, reasons = containers.select_backend("auto")
    runtime = containers.runtime_for(backend) if backend else None
    if backend is None or runtime is None:
        sys.exit(f"no container backend here: {reasons}")
    tmp = Path(tempfile.mkdtemp(prefix="maas-bench-promotion-"))
    root = tmp / "project"
    root.mkdir()
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks")
    shutil.copy(ROOT / "bentofile.yaml", root / "bentofile.yaml")
    raw = root / read_raw(root / "params.yaml", args.task)["data"]["raw_dir"]
    raw.mkdir(parents=True)
    for partition in sorted(args.raw_dir.glob("*.parquet"))[-PARTITIONS:]:
        shutil.copy(partition, raw / partition.name)
    model = f"bench-promotion-{os.getpid()}"
    address = f"127.0.0.1:{free_port()}"
    sets = [
        "model.kind=mlp",  # quick: the task's TabM takes ~11 min per epoch on 2 cores
        "train.max_epochs=2",
        "promotion.must_beat=[prior]",
        "promotion.floors={}",  # v2 and v3 must pass the gate: the controller refuses
        "promotion.floors_optional_absent={}",
        "promotion.max_regression=1",  # a version that did not (their score does not matter)
        f"registry.model_name={model}",
        f"deploy.address={address}",
        "deploy.webhook_listen=null",
        # absolute: MLflow caches stores by URI, and a relative one may already be open
        # elsewhere in this process (benchmarks/run_all.py)
        f"registry.tracking_uri=sqlite:///{root / '.maas/mlflow.db'}",
    ]
    params = load_params(root / "params.yaml", sets, args.task)
    ours_url = f"http://{address}/models/{params.registry.model_name}/predict"
    os.chdir(root)
    uri = str(params.registry.tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # not a registry set earlier
    watch = None
    bare_container = None

    def start_watch(extra: list[str]) -> subprocess.Popen[bytes]:
        log = (root / "watch.log").open("ab")
        return subprocess.Popen(
            [
                str(BIN / "maas"),
                "watch",
                "--task",
                params.task,
                "--interval",
                "1",
                "-p",
                "params.yaml",
                *[a for s in [*sets, *extra] for a in ("--set", s)],
            ],
            cwd=root,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    try:
        maas(root, sets, "run", task=args.task)  # v1: the champion
        spec = request_spec(root / params.train.models_dir)  # the task's request, its example
        body = {spec.body_key: [spec.example]}
        # first without packaging ahead: v2 meets its promotion unpackaged (the cold path)
        watch = start_watch(["packaging.prepare_newest=0"])
        first = wait_for(ours_url, body, "1", time.perf_counter())
        print(f"controller start -> v1 serving: {first:.1f} s (includes the first image build)")
        no_gate = [*sets, "promotion.auto_promote=false"]
        maas(root, [*no_gate, "train.seed=7"], "run", task=args.task)  # v2
        maas(root, [*no_gate, "train.seed=8"], "run", task=args.task)  # v3
        time.sleep(3)  # the controller is idle again

        started = time.perf_counter()
        client.set_registered_model_alias(model, "champion", "2")
        cold = wait_for(ours_url, body, "2", started)
        print(f"ours, never packaged: alias -> v2 answering at the stable address: {cold:.1f} s")

        # bare: the v3 Bento is built first (not timed), from v3's recorded serving code as
        # packaging does, then containerize + start (before v3's image exists anywhere)
        version = resolve_version(client, params.registry.model_name, "3")
        model_tag = create_bento_model(client, params.registry, version)
        with tempfile.TemporaryDirectory(prefix="bench-code-") as scratch:
            code = download_serving_code(client, version, Path(scratch))
            bento_tag, _ = build_bento(
                model,
                "3",
                model_tag,
                version_digests(version),
                code,
                version.tags[DIGEST_TAG],
                params.packaging,
                params.serving,
            )
        import bentoml

        image = f"localhost/bench-bare-{model}:v3"
        port = free_port()
        started = time.perf_counter()
        build: Any = bentoml.container.build
        build(bento_tag, backend=backend, image_tag=(image,), **build_options(params.packaging))
        built = time.perf_counter() - started
        bare_container = containers.run_container(
            runtime, image, f"bench-bare-{port}", port, network=params.packaging.network
        )
        if not wait_ready(f"http://127.0.0.1:{port}", 300):
            raise RuntimeError("bare container did not get ready")
        bare = wait_for(f"http://127.0.0.1:{port}/predict", body, "3", started)
        print(f"bare: containerize {built:.1f} s + start -> v3 answering: {bare:.1f} s")
        containers.remove_container(runtime, bare_container)
        bare_container = None

        # then the shipped setting: the idle controller packages v3 (the newest version that
        # passed the gate) ahead; the alias moves once that is done, as a person would later
        stop_server(watch, grace_s=60)
        watch = start_watch([])
        deadline = time.monotonic() + 600
        while "infra_validation" not in client.get_model_version(model, "3").tags:
            if time.monotonic() > deadline:
                raise RuntimeError("the controller did not package v3 ahead within 600 s")
            time.sleep(0.5)
        time.sleep(2)  # the controller is idle again
        started = time.perf_counter()
        client.set_registered_model_alias(model, "champion", "3")
        ours = wait_for(ours_url, body, "3", started)
        print(f"ours, packaged ahead: alias -> v3 answering at the stable address: {ours:.1f} s")

        # the release flow prints its timings (Prefect log_prints): the controller's own log
        # file since its output is kept clean (maas.cli.logs), its stdout before
        def steps_of(number: str) -> dict[str, float]:
            logs = [root / "watch.log", root / LOG_FILE]
            steps = [
                line.split("timings (s): ", 1)[1].strip()
                for log_path in logs
                if log_path.exists()
                for line in log_path.read_text(errors="replace").splitlines()
                if f"release v{number} timings (s): " in line
            ]
            return dict(json.loads(steps[-1])) if steps else {}

        deadline = time.monotonic() + 60  # the release prints its timings once it switched
        while not steps_of("3") and time.monotonic() < deadline:
            time.sleep(0.5)
        breakdown, cold_breakdown = steps_of("3"), steps_of("2")
        print(f"ours, steps (s): packaged ahead {breakdown}; never packaged {cold_breakdown}")
        result = {
            "ours_s": ours,
            "ours_steps_s": breakdown,
            "cold_s": cold,
            "cold_steps_s": cold_breakdown,
            "bare_s": bare,
            "bare_containerize_s": built,
            "ratio_ours_vs_bare": ours / bare,
            "ratio_cold_vs_bare": cold / bare,
            "controller_first_deploy_s": first,
        }
        print(
            f"ratio ours / bare: packaged ahead {ours / bare:.2f}x (goal <= 1.3x), "
            f"never packaged {cold / bare:.2f}x"
        )
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(result, indent=1))
        return result
    finally:
        if bare_container is not None:
            containers.remove_container(runtime, bare_container)
        # a controller can miss SIGTERM in the middle of a release: killed after 60 s
        stop_server(watch, grace_s=60)
        from maas.operate.targets import LocalTarget

        LocalTarget(root / params.deploy.state_dir, params.deploy.address, runtime).stop_all()
        images = [f"localhost/bench-bare-{model}:v3"]
        for number in ("1", "2", "3"):  # the images packaging tagged on the versions
            with contextlib.suppress(Exception):
                images.append(client.get_model_version(model, number).tags["image"])
        subprocess.run([runtime, "image", "rm", "--force", *images], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
