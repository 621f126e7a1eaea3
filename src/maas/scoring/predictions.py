"""Scored rows fed to the prediction log (`maas score --log-predictions`), so that `maas
monitor`'s drift and realized quality cover batch use as they cover the service.

The lines are the service's own: written by its writer (`maas.serving.prediction_log`) with
its policy (the request's declared fields and the task's key and time columns, redacted as
`monitoring.redact` says), one line per `RECORDS_PER_LINE` rows as if they had been one
request, into the model's log folder (`monitoring.log_dir/<model>`), in this process's own
file. Each scored row is paired with its input record: the output holds the input's rows in
order, less the refused ones, whose input row numbers the errors file holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maas.config import Params
from maas.scoring.inputs import Unit
from maas.scoring.worker import read_unit

RECORDS_PER_LINE = 1_000  # as many records as one large request carries


def log_scored(
    params: Params,
    *,
    version: str,
    units: list[Unit],
    fields: list[str],
    pass_through: list[str],
    output: Path,
    errors_file: Path | None,
) -> int:
    """Append the rows of `output` (scored from `units` by `version`; `fields`: the request's
    declared fields; `pass_through`: the output's columns that are not outputs) to the task's
    prediction log, each with its input record; the rows logged."""
    import pyarrow.parquet as pq

    from maas.serving.log_policy import LogPolicy
    from maas.serving.prediction_log import PredictionLog

    monitoring = params.monitoring
    body_key = params.serving.body_key
    keys = params.logged_keys
    policy = LogPolicy(body_key, frozenset(fields), frozenset(keys), monitoring.redact)
    writer = PredictionLog(
        monitoring.log_dir / params.registry.model_name,
        params.registry.model_name,
        version,
        monitoring.log_max_bytes,
        monitoring.log_backups,
        policy=policy,
        retention_days=monitoring.retention_days,
    )
    refused = set()
    if errors_file is not None:
        refused = set(pq.read_table(errors_file, columns=["row"])["row"].to_pylist())
    outputs = _output_rows(output)
    names = list(dict.fromkeys([*fields, *keys]))
    # a prediction as the service answers it: `model_version` is the response's
    not_outputs = {*pass_through, "model_version"}
    logged = 0
    try:
        records: list[dict[str, Any]] = []
        predictions: list[dict[str, Any]] = []
        for unit in units:
            table = read_unit(unit.source, unit.unit, unit.kind)
            table = table.select([name for name in names if name in table.column_names])
            for index, record in enumerate(table.to_pylist()):
                if unit.offset + index in refused:
                    continue
                records.append({k: _json_value(v) for k, v in record.items()})
                row = next(outputs)
                predictions.append({k: v for k, v in row.items() if k not in not_outputs})
                if len(records) == RECORDS_PER_LINE:
                    logged += _write(writer, body_key, version, records, predictions)
                    records, predictions = [], []
        if records:
            logged += _write(writer, body_key, version, records, predictions)
    finally:
        writer.close()
    return logged


def _write(
    writer: Any,
    body_key: str,
    version: str,
    records: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
) -> int:
    request = json.dumps({body_key: records}).encode()
    response = json.dumps({"model_version": version, "predictions": predictions}).encode()
    writer.write(request, response)
    return len(records)


def _output_rows(output: Path) -> Iterator[dict[str, Any]]:
    """The output's rows in order: a file (local backend) or Spark's folder of part files
    (named in partition order)."""
    import pyarrow.parquet as pq

    files = [output] if output.is_file() else sorted(output.glob("part-*.parquet"))
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()


def _json_value(value: Any) -> Any:
    """A NaN is a missing value (a JSON body holds none); dates and times as ISO text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
