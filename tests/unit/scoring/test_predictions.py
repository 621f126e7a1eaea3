"""`maas score --log-predictions`: the scored rows reach the task's prediction log in the
service's format, so `maas monitor`'s reader counts them as served rows, each with its input
record and its outputs; refused rows are not logged (issue 31 item 6)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maas.monitor.predictions import LogColumns, read_predictions
from maas.scoring import predictions
from maas.scoring.local import score_table
from tests.helpers import make_flights, signed_champion
from tests.unit.scoring.test_local import table_with_hostile_rows


def test_scored_rows_are_read_back_by_the_monitor_as_served(
    tmp_path, small_params, monkeypatch
) -> None:
    params, *_ = signed_champion(tmp_path, small_params, "logged")
    log_dir = tmp_path / "predictions"
    params = params.model_copy(
        update={"monitoring": params.monitoring.model_copy(update={"log_dir": log_dir})}
    )
    monkeypatch.setattr(predictions, "RECORDS_PER_LINE", 100)
    rows = table_with_hostile_rows(make_flights(300, month=12, seed=4))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=60)
    output = tmp_path / "out.parquet"
    summary = score_table(
        params, version="1", input_uri=str(source), output=output, log_predictions=True
    )
    assert summary.errors == 1 and summary.logged == summary.rows == 249
    logged = read_predictions(log_dir / "logged", params.serving.body_key, LogColumns.of(params))
    assert logged.lines == 3 and logged.skipped == 0  # 100 records a line, as one request
    frame = logged.frame
    scored = pq.read_table(output).to_pandas()
    kept = rows.drop(index=7).reset_index(drop=True)
    assert len(frame) == 249 and set(frame["model_version"]) == {"1"}
    assert frame["delay_probability"].tolist() == pytest.approx(
        scored["delay_probability"].tolist(), abs=0
    )
    assert frame["delayed"].tolist() == scored["delayed"].tolist()
    assert frame["flight"].tolist() == kept["flight"].tolist()  # a key: late labels join on it
    assert frame["carrier"].tolist() == kept["carrier"].tolist()  # a declared field
    assert frame["temp"].isna().sum() == kept["temp"].isna().sum()  # missing stays missing
    assert "tailnum" not in frame.columns  # neither declared nor a key: never logged
