"""`maas score`, the local backend, on a real SQLite registry with a signed tiny model: the
same outputs as the service for the same records (unknown categories, optional fields left
out, rows the service would refuse), keys passed through, resumable, and bad input refused
before anything is scored (issue 31 items 1-3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from maas.errors import ScoringError, UntrustedVersionError
from maas.scoring import local
from maas.scoring.local import errors_path, score_table
from maas.serving.inference import OnnxModel, request_spec
from maas.serving.schema import build_schema
from tests.helpers import make_flights, register_tiny, signed_champion

KEYS = ["year", "month", "day", "carrier", "flight", "origin"]


@pytest.fixture
def project(tmp_path, small_params):
    """A signed champion (v1) and an unsigned v2, registered as the register stage does."""
    params, _, _, frame, models = signed_champion(tmp_path, small_params, "batch")
    register_tiny(params.registry, models, frame, {"gate_passed": "true"})  # v2: unsigned
    return params, models


def table_with_hostile_rows(frame):
    """The records as a client would send them, plus an unknown carrier, a left-out optional
    field and an impossible clock time (a 400 online) among them."""
    rows = frame.head(250).copy()
    rows.loc[rows.index[3], "carrier"] = "ZZ"  # a category the model never saw
    rows.loc[rows.index[5], "temp"] = np.nan  # optional: scored as missing
    rows["sched_dep_time"] = rows["sched_dep_time"].astype("int64")
    rows.loc[rows.index[7], "sched_dep_time"] = 1299  # 12:99 is no time: refused
    return rows.reset_index(drop=True)


def online(models: Path, rows) -> tuple[list[dict], list[int]]:
    """What the service answers for each record (its schema, its scoring call, its response
    fields), and the rows it refuses with a 400."""
    model = OnnxModel.load(models)
    spec = request_spec(models)
    schema = build_schema(spec, 10_000, frozenset(model.preprocessor.clock_inputs or ()))
    records, refused = [], []
    for index, row in enumerate(rows[spec.names].to_dict("records")):
        clean = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        clean = {k: v.item() if hasattr(v, "item") else v for k, v in clean.items()}
        try:
            records.append(schema.record.model_validate(clean))
        except ValidationError:
            refused.append(index)
    response = schema.to_response("1", *model.score(schema.to_columns(records)))
    return json.loads(response.model_dump_json())["predictions"], refused


def test_batch_gives_the_services_answers_with_keys_passed_through(project, tmp_path) -> None:
    params, models = project
    rows = table_with_hostile_rows(make_flights(300, month=12, seed=3))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=60)
    output = tmp_path / "out.parquet"
    summary = score_table(
        params, version="champion", input_uri=str(source), output=output, columns=("tailnum",)
    )
    expected, refused = online(models, rows)
    assert refused == [7] and summary.rows == 249 and summary.errors == 1
    assert summary.version == "1" and summary.resumed_units == 0
    scored = pq.read_table(output).to_pylist()
    assert [r["delay_probability"] for r in scored] == pytest.approx(
        [p["delay_probability"] for p in expected], abs=1e-7
    )
    assert [r["delayed"] for r in scored] == [p["delayed"] for p in expected]
    assert [r["unknown_inputs"] for r in scored] == [p["unknown_inputs"] for p in expected]
    assert scored[3]["unknown_inputs"] == ["carrier"]
    kept = rows.drop(index=7).reset_index(drop=True)
    assert [r["flight"] for r in scored] == kept["flight"].tolist()  # a key, in input order
    assert [r["tailnum"] for r in scored] == kept["tailnum"].tolist()  # asked for
    assert {r["model_version"] for r in scored} == {"1"}
    (error,) = pq.read_table(errors_path(output)).to_pylist()
    assert error["row"] == 7 and "sched_dep_time" in error["error"]
    assert error["flight"] == rows.loc[7, "flight"]
    assert not output.with_name("out.parquet.parts").exists()  # nothing left behind
    from maas.scoring.lineage import recent_jobs
    from maas.tracking.store import connect

    (job,) = recent_jobs(connect(params.registry), "batch")  # the job's lineage run
    assert job["version"] == "1" and job["input_rows"] == "250" and job["rows"] == 249.0
    assert job["errors"] == 1.0 and job["output"] == str(output.resolve())


def test_a_killed_job_started_again_resumes_and_bad_input_is_refused_first(
    project, tmp_path, monkeypatch
) -> None:
    params, _ = project
    rows = make_flights(200, month=12, seed=5)
    rows["sched_dep_time"] = rows["sched_dep_time"].astype("int64")
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=50)
    output = tmp_path / "out.parquet"

    def killed(*args):
        raise KeyboardInterrupt  # Ctrl-C once every unit was scored, before the merge

    with monkeypatch.context() as patch:
        patch.setattr(local, "_merge", killed)
        with pytest.raises(KeyboardInterrupt):
            score_table(params, version="1", input_uri=str(source), output=output, workers=1)
    assert not output.exists()
    again = score_table(params, version="1", input_uri=str(source), output=output)
    assert again.resumed_units == 4 and again.rows == 200
    with pytest.raises(ScoringError, match="exists: choose another path or --overwrite"):
        score_table(params, version="1", input_uri=str(source), output=output)
    before = output.read_bytes()
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(pa.Table.from_pandas(rows.drop(columns=["distance"])), lacking)
    with pytest.raises(ScoringError, match="lacks the column.s. distance the model requires"):
        score_table(params, version="1", input_uri=str(lacking), output=tmp_path / "o.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ScoringError, match="cannot be read as parquet"):
        score_table(params, version="1", input_uri=str(broken), output=tmp_path / "o.parquet")
    with pytest.raises(UntrustedVersionError, match="v2 is not trusted"):
        score_table(params, version="2", input_uri=str(source), output=tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists() and output.read_bytes() == before
