"""One batch-scoring worker, run as a script in a child process whose `sys.path` starts with a
version's recorded serving code (`maas.tracking.serving_code`): it scores the row groups it is
given exactly as that version's service answers /predict — each row validated by the
service's record model (a row it refuses is a per-row error with the reason, as a 400 would
be), featurized and scored in one ONNX call, the outputs built by the service's own response
fields — and writes one Parquet part of outputs (and one of errors) atomically.

It imports nothing of maas but the recorded `maas.serving`, and runs with an allowlisted
environment (no gate key). Arguments: the recorded code's folder, then one JSON object (see
`maas.scoring.local.WorkerTask`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _atomic(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def _read(source: str, unit: int, kind: str) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if kind == "parquet":
        return pq.ParquetFile(source).read_row_group(unit)
    table = pcsv.read_csv(source)  # a CSV file is one unit
    return table


def _outputs(schema: Any, version: str, outputs: Any, unknown: list[list[str]]) -> list[dict]:
    rows = []
    for values, fields in zip(outputs.astype(float).tolist(), unknown, strict=True):
        row = schema.output_values(values)
        rows.append({**row, "unknown_inputs": fields, "model_version": version})
    return rows


def score(task: dict[str, Any]) -> dict[str, int]:
    import pyarrow as pa
    from pydantic import ValidationError

    from maas.serving.inference import OnnxModel, request_spec
    from maas.serving.schema import build_schema

    model_dir = Path(task["model_dir"])
    model = OnnxModel.load(model_dir)
    spec = request_spec(model_dir)
    clock = frozenset(getattr(model.preprocessor, "clock_inputs", ()) or ())
    schema = build_schema(spec, 1, clock)
    table = _read(task["source"], task["unit"], task["kind"])
    passed = [c for c in task["pass_through"] if c in table.column_names]
    names = [name for name in spec.names if name in table.column_names]
    records, kept, errors = [], [], []
    for index, row in enumerate(table.select(names).to_pylist()):
        # a NaN is a missing value, as a JSON body cannot hold one
        fields = {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        try:
            records.append(schema.record.model_validate(fields))
            kept.append(index)
        except ValidationError as error:
            problem = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                for e in error.errors()
            )
            errors.append({"row": task["offset"] + index, "error": problem[:1000]})
    out_rows: list[dict[str, Any]] = []
    for start in range(0, len(records), task["batch_rows"]):
        chunk = records[start : start + task["batch_rows"]]
        outputs, unknown = model.score(schema.to_columns(chunk))
        out_rows += _outputs(schema, task["version"], outputs, unknown)
    result = pa.Table.from_pylist(out_rows) if out_rows else None
    if result is not None:
        through = table.select(passed).take(pa.array(kept, type=pa.int64()))
        for name in reversed(through.column_names):
            result = result.add_column(0, name, through[name])
        _atomic(result, Path(task["part"]))
    if errors:
        errs = pa.Table.from_pylist(errors)
        rows = pa.array([e["row"] - task["offset"] for e in errors], type=pa.int64())
        through = table.select(passed).take(rows)
        for name in reversed(through.column_names):
            errs = errs.add_column(0, name, through[name])
        _atomic(errs, Path(task["errors"]))
    Path(task["done"]).write_text(json.dumps({"rows": len(kept), "errors": len(errors)}))
    return {"rows": len(kept), "errors": len(errors)}


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])  # the recorded serving code, before any installed maas
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(score(json.loads(line))), flush=True)
