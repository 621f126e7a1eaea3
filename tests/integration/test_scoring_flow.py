"""The scoring flows on a real Prefect API (one temporary server for this module): the
scheduled `score-partitions` flow scores each partition of the task's raw data once, again
only when the partition changed, and (scoring.log_predictions) feeds the rows to the
prediction log `maas monitor` reads; `score` runs one job (issue 31 item 5)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maas.config import load_params
from maas.monitor.predictions import LogColumns, read_predictions
from tests.helpers import ROOT, make_flights, signed_champion

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_each_new_partition_is_scored_once_and_logged(tmp_path, small_params, prefect_api):
    from maas.flows.scoring import score, score_partitions

    signed_champion(tmp_path, small_params, "nightly")
    raw = tmp_path / "raw"
    raw.mkdir()
    for month in (11, 12):
        rows = make_flights(80, month=month, seed=month)
        rows["sched_dep_time"] = rows["sched_dep_time"].astype("int64")
        pq.write_table(
            pa.Table.from_pandas(rows, preserve_index=False), raw / f"2013-{month}.parquet"
        )
    overrides = [  # the project signed_champion registered into, and where to score
        f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"registry.artifact_root={tmp_path / 'artifacts'}",
        "registry.model_name=nightly",
        "registry.experiment=nightly",
        f"promotion.verdict_key_file={tmp_path / 'gate.key'}",
        f"data.raw_dir={raw}",
        f"scoring.output_dir={tmp_path / 'scored'}",
        "scoring.log_predictions=true",
        f"monitoring.log_dir={tmp_path / 'predictions'}",
    ]
    run = {"params_file": str(ROOT / "params.yaml"), "overrides": overrides}
    jobs = score_partitions(**run)
    assert [(job["partition"], job["rows"], job["logged"]) for job in jobs] == [
        ("2013-11", 80, 80),
        ("2013-12", 80, 80),
    ]
    scored = tmp_path / "scored" / "flight-delay"
    assert sorted(p.name for p in scored.iterdir()) == ["2013-11.parquet", "2013-12.parquet"]
    assert score_partitions(**run) == []  # nothing new
    later = (scored / "2013-12.parquet").stat().st_mtime_ns + 10**9  # after its output
    os.utime(raw / "2013-12.parquet", ns=(later, later))  # the partition was written again
    assert [job["partition"] for job in score_partitions(**run)] == ["2013-12"]
    params = load_params(ROOT / "params.yaml", overrides)
    logged = read_predictions(
        tmp_path / "predictions" / "nightly", params.serving.body_key, LogColumns.of(params)
    )
    assert len(logged.frame) == 240 and set(logged.frame["model_version"]) == {"1"}
    one = score(input_uri=str(raw / "2013-11.parquet"), output=str(tmp_path / "one.parquet"), **run)
    assert one["rows"] == 80 and one["version"] == "1" and one["logged"] == 0
