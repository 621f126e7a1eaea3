"""`maas score --input s3://...` against a real S3 API on loopback (moto's server, read by
s3fs): a prefix and a glob score row for row as the same files on disk, a stopped job resumes,
a missing bucket or key is a clear error, and the credentials, given by environment only,
reach the worker processes that read but never the job's MLflow run or the log (issue 31
item 1)."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maas.errors import ScoringError
from maas.scoring import local
from maas.scoring.local import score_table
from tests.helpers import make_flights, signed_champion

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "maas-batch"
KEY_ID, SECRET = "AKIAMAASTESTKEYID7F3A", "maas-test-secret-9b1c-do-not-log"


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint, tmp_path_factory, small_params):
    """A signed champion, and the same two Parquet files and a CSV on disk and in
    s3://maas-batch/in/ (plus a note that is no input); credentials by environment only."""
    import boto3

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        yield from _uploaded(boto3.client("s3"), tmp_path_factory.mktemp("s3"), small_params)


def _uploaded(client, tmp_path, small_params):
    s3fs.S3FileSystem.clear_instance_cache()
    params, *_ = signed_champion(tmp_path, small_params, "batch")
    rows = make_flights(240, month=12, seed=7)
    rows["sched_dep_time"] = rows["sched_dep_time"].astype("int64")
    folder = tmp_path / "in"
    folder.mkdir()
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pq.write_table(table.slice(0, 100), folder / "a.parquet", row_group_size=50)
    pq.write_table(table.slice(100, 80), folder / "b.parquet", row_group_size=50)
    rows.iloc[180:].to_csv(folder / "c.csv", index=False)
    client.create_bucket(Bucket=BUCKET)
    for path in folder.iterdir():
        client.upload_file(str(path), BUCKET, f"in/{path.name}")
    client.put_object(Bucket=BUCKET, Key="in/notes.txt", Body=b"not an input")
    yield params, folder
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def test_a_prefix_and_a_glob_score_as_the_same_files_on_disk_and_keep_the_keys_secret(
    s3, tmp_path, caplog, capfd
) -> None:
    params, folder = s3
    caplog.set_level(logging.INFO)
    on_disk = score_table(params, version="1", input_uri=str(folder), output=tmp_path / "l.parquet")
    bucket = score_table(
        params, version="1", input_uri=f"s3://{BUCKET}/in/", output=tmp_path / "s3.parquet"
    )
    assert bucket.rows == on_disk.rows == 240
    assert pq.read_table(tmp_path / "s3.parquet").equals(pq.read_table(tmp_path / "l.parquet"))
    glob = score_table(
        params, version="1", input_uri=f"s3://{BUCKET}/in/*.parquet", output=tmp_path / "g.parquet"
    )
    assert glob.rows == 180  # a.parquet and b.parquet: the first 180 rows on disk
    assert pq.read_table(tmp_path / "g.parquet").equals(
        pq.read_table(tmp_path / "l.parquet").slice(0, 180)
    )

    from maas.scoring.lineage import experiment_name
    from maas.tracking.store import connect

    client = connect(params.registry)
    experiment = client.get_experiment_by_name(experiment_name("batch"))
    runs = client.search_runs([experiment.experiment_id])
    inputs = {run.data.tags["maas.scoring.input"] for run in runs}
    assert {f"s3://{BUCKET}/in/", f"s3://{BUCKET}/in/*.parquet"} <= inputs
    recorded = [
        str(v) for run in runs for v in (*run.data.params.values(), *run.data.tags.values())
    ]
    seen = caplog.text + "".join(capfd.readouterr()) + "".join(recorded)
    assert KEY_ID not in seen and SECRET not in seen


def test_a_stopped_job_resumes_and_a_missing_bucket_or_key_is_named(
    s3, tmp_path, monkeypatch
) -> None:
    params, _ = s3
    output = tmp_path / "out.parquet"

    def stopped(*args):
        raise KeyboardInterrupt  # every unit scored, then Ctrl-C before the merge

    with monkeypatch.context() as patch:
        patch.setattr(local, "_merge", stopped)
        with pytest.raises(KeyboardInterrupt):
            score_table(params, version="1", input_uri=f"s3://{BUCKET}/in/", output=output)
    again = score_table(params, version="1", input_uri=f"s3://{BUCKET}/in/", output=output)
    assert again.resumed_units == 5 and again.rows == 240  # 2 + 2 row groups and the CSV
    other = tmp_path / "other.parquet"
    with pytest.raises(
        ScoringError,
        match="s3://no-such-bucket/in/: no such object or prefix .no bucket no-such-bucket",
    ):
        score_table(params, version="1", input_uri="s3://no-such-bucket/in/", output=other)
    with pytest.raises(ScoringError, match=f"s3://{BUCKET}/in/zz.parquet: no such object"):
        score_table(params, version="1", input_uri=f"s3://{BUCKET}/in/zz.parquet", output=other)
    assert not other.exists()
