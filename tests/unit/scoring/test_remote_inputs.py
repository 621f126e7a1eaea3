"""An input named by a URI with a scheme, through fsspec (issue 31 item 1): a file, a prefix or
a glob of an in-memory filesystem planned into the same units as the same files on disk, read
by the worker's `read_unit`, fingerprinted by what the filesystem says of each object; what is
recorded of a URI has no credentials; the storage's variables, and only those, reach the
readers; a scheme without its package, and the Spark backend, are refused by name. The real
S3 API (moto, s3fs) is tests/integration/test_scoring_s3.py."""

from __future__ import annotations

from importlib.util import find_spec

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maas.errors import ScoringError
from maas.scoring.inputs import fingerprint, input_files, plan
from maas.scoring.local import score_table
from maas.scoring.remote import shown, storage_environment
from maas.scoring.worker import read_unit


@pytest.fixture
def tree(tmp_path):
    """The same three files on disk and under memory://maas-test/in/ (plus a note)."""
    fs = fsspec.filesystem("memory")
    table = pa.table({"a": list(range(100)), "b": [f"x{i}" for i in range(100)]})
    local = tmp_path / "in"
    local.mkdir()
    pq.write_table(table.slice(0, 60), local / "one.parquet", row_group_size=25)
    pq.write_table(table.slice(60, 30), local / "two.parquet")
    (local / "three.csv").write_text("a,b\n90,x90\n91,x91\n")
    for path in local.iterdir():
        fs.pipe(f"/maas-test/in/{path.name}", path.read_bytes())
    fs.pipe("/maas-test/in/notes.txt", b"not an input")
    yield local
    fs.rm("/maas-test", recursive=True)


def test_a_prefix_or_glob_plans_as_the_same_files_on_disk(tree) -> None:
    remote_files = input_files("memory://maas-test/in/")
    assert [name.rsplit("/", 1)[-1] for name in remote_files] == [
        "one.parquet",
        "three.csv",
        "two.parquet",
    ]
    assert all(name.startswith("memory://") for name in remote_files)
    units, common = plan(remote_files, ["a"])
    local_units, local_common = plan(input_files(str(tree)), ["a"])
    assert common == local_common == ["a", "b"]
    assert [(u.kind, u.unit, u.offset, u.rows) for u in units] == [
        (u.kind, u.unit, u.offset, u.rows) for u in local_units
    ]
    assert [u.rows for u in units] == [25, 25, 10, 2, 30]
    globbed = input_files("memory://maas-test/in/*.parquet")
    assert [name.rsplit("/", 1)[-1] for name in globbed] == ["one.parquet", "two.parquet"]
    for unit, local in zip(units, local_units, strict=True):
        assert read_unit(unit.source, unit.unit, unit.kind).equals(
            read_unit(local.source, local.unit, local.kind)
        )
    before = fingerprint("1", units, ["a"])
    assert fingerprint("1", units, ["a"]) == before
    fsspec.filesystem("memory").pipe("/maas-test/in/two.parquet", b"changed")
    assert fingerprint("1", units, ["a"]) != before  # the object's size changed


def test_missing_objects_bad_files_and_schemes_are_refused_by_name(tree) -> None:
    with pytest.raises(ScoringError, match="memory://maas-test/none/: no such object or prefix"):
        input_files("memory://maas-test/none/")
    with pytest.raises(ScoringError, match="no Parquet or CSV file there"):
        input_files("memory://maas-test/in/*.json")
    with pytest.raises(ScoringError, match="notes.txt is neither Parquet nor CSV"):
        input_files("memory://maas-test/in/*")
    with pytest.raises(ScoringError, match="lacks the column.s. c the model requires"):
        plan(input_files("memory://maas-test/in/"), ["c"])
    fsspec.filesystem("memory").pipe("/maas-test/in/one.parquet", b"PAR1 not really")
    with pytest.raises(ScoringError, match="memory:///maas-test/in/one.parquet cannot be read"):
        plan(input_files("memory://maas-test/in/one.parquet"), ["a"])
    with pytest.raises(ScoringError, match="Protocol not known: nosuch"):
        input_files("nosuch://bucket/x.parquet")
    if find_spec("gcsfs") is None:  # fsspec's own words name the package to install
        with pytest.raises(ScoringError, match="--input gs://b/x.parquet: .*install gcsfs"):
            input_files("gs://b/x.parquet")


def test_what_is_recorded_has_no_credentials_and_readers_get_only_the_storage_variables(
    tmp_path, small_params
) -> None:
    assert shown("s3://bucket/in/") == "s3://bucket/in/"
    assert shown("ftp://ann:hunter2@host:21/in/x.csv") == "ftp://host:21/in/x.csv"
    assert shown("https://host/x.parquet?sig=hunter2") == "https://host/x.parquet"
    assert shown("/data/in/x.parquet") == "/data/in/x.parquet"
    environ = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AZURE_STORAGE_KEY": "azure",
        "FSSPEC_S3_ANON": "false",
        "HTTPS_PROXY": "http://proxy:3128",
        "MAAS_GATE_KEY": "gate",
        "MLFLOW_TRACKING_PASSWORD": "mlflow",
    }
    assert storage_environment("s3://bucket/in/", environ) == {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "FSSPEC_S3_ANON": "false",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    assert set(storage_environment("az://container/in/", environ)) == {
        "AZURE_STORAGE_KEY",
        "FSSPEC_S3_ANON",
        "HTTPS_PROXY",
    }
    assert storage_environment(str(tmp_path), environ) == {}  # a local path: nothing more
    output = tmp_path / "out.parquet"
    with pytest.raises(ScoringError, match="--backend spark reads local or shared-filesystem"):
        score_table(
            small_params, version="1", input_uri="s3://b/in/", output=output, backend="spark"
        )
    with pytest.raises(ScoringError, match="memory://: lives in this process only"):
        score_table(small_params, version="1", input_uri="memory://b/in/", output=output)
    assert not list(tmp_path.iterdir())  # refused before anything was downloaded
