"""The scoring of one unit of rows (a Parquet row group, a CSV file) exactly as a version's
service answers /predict — each row validated by the service's record model (a row it refuses
is a per-row error with the reason, as a 400 would be), featurized and scored in one ONNX call
per batch, the outputs built by the service's own response fields — by the version's RECORDED
serving code, loaded from its verified folder (`load_recorded`), never this package's copy.

Both backends run it: the local backend as a script in child processes (arguments: the
recorded code's folder, then one JSON task per line on stdin; see `maas.scoring.local`), the
Spark backend in its executors (`score_partition`, shipped by value by
`maas.scoring.spark_job`). Either way it imports nothing of maas but the recorded
`maas.serving`, and its process has an allowlisted environment (no gate key).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (relative names; caches left out)."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def load_recorded(context: Path, digests: dict[str, str] | None = None) -> None:
    """Make `import maas.serving` load the recorded code in `context` (a copy checked against
    `digests`, when given): first on sys.path, and any other maas this process imported
    before forgotten. Raises RuntimeError when it cannot be made so."""
    if digests is not None and file_digests(context) != digests:
        raise RuntimeError(f"the serving code shipped to {context} differs from the verified one")
    root = str(context)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    loaded = sys.modules.get("maas")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(root):
        for name in [n for n in sys.modules if n == "maas" or n.startswith("maas.")]:
            del sys.modules[name]
    import maas.serving.inference as inference

    if not str(inference.__file__).startswith(root):
        raise RuntimeError(f"maas.serving came from {inference.__file__}, not from {root}")


class Scorer:
    """One version's model, request spec and service schema, loaded once per process (local)
    or per partition (Spark): one ONNX session."""

    def __init__(self, model_dir: Path, version: str, digests: dict[str, str] | None = None):
        from maas.serving.inference import OnnxModel, request_spec
        from maas.serving.schema import build_schema

        self.model = OnnxModel.load(model_dir, digests)
        self.spec = request_spec(model_dir)
        clock = frozenset(getattr(self.model.preprocessor, "clock_inputs", ()) or ())
        self.schema = build_schema(self.spec, 1, clock)
        self.version = version
        self._schemas: dict[Any, Any] = {}
        self.columnar: Any = None
        try:  # absent from the serving code of versions recorded before it
            import maas.serving.columnar as columnar

            self.columnar = columnar
        except ModuleNotFoundError as error:
            if error.name != "maas.serving.columnar":
                raise

    def output_schema(self, passed: Any) -> Any:
        """The output's Arrow schema: the passed-through fields (`passed`), the version's
        outputs as the service builds them (from its example record), `unknown_inputs` and
        `model_version`."""
        import pyarrow as pa

        if passed in self._schemas:
            return self._schemas[passed]
        example = self.schema.record.model_validate(self.spec.example)
        outputs, _ = self.model.score(self.schema.to_columns([example]))
        row = self.schema.output_values(outputs.astype(float).tolist()[0])
        fields = [*(plain_field(f) for f in passed), *pa.Table.from_pylist([row]).schema]
        fields += [pa.field("unknown_inputs", pa.list_(pa.string()))]
        self._schemas[passed] = pa.schema([*fields, pa.field("model_version", pa.string())])
        return self._schemas[passed]

    def score(self, table: Any, offset: int, passed: list[str], batch_rows: int) -> tuple[Any, Any]:
        """(the scored rows, the refused rows) of an Arrow `table` whose first row is input row
        `offset`: the `passed` columns, then the outputs (scored) or `row`, `error` (refused);
        None for an empty side. By the recorded code's column-by-column path when it has one
        (`maas.serving.columnar`), else record by record as the service validates them."""
        import pyarrow as pa

        if self.columnar is None:  # a version recorded before the columnar path
            kept, errors, outputs, unknown = self._by_record(table, batch_rows)
        else:
            kept, errors, outputs, unknown = self._by_column(table, batch_rows)
        through = table.select(passed)
        scored = refused = None
        if len(kept):
            everyone = len(kept) == table.num_rows  # kept is in order: every row, as it is
            scored = through if everyone else through.take(pa.array(kept, type=pa.int64()))
            for name, column in outputs.items():
                scored = scored.append_column(name, _arrow(column))
            if isinstance(unknown, list):  # the record path's
                unknown = pa.array(unknown, type=pa.list_(pa.string()))
            scored = scored.append_column("unknown_inputs", unknown)
            version = pa.array([self.version] * len(kept), type=pa.string())
            scored = scored.append_column("model_version", version)
            scored = scored.cast(self.output_schema(through.schema))
        if errors:
            rows = pa.array([e["row"] for e in errors], type=pa.int64())
            refused = _beside(through.take(rows), [{**e, "row": offset + e["row"]} for e in errors])
            refused = refused.cast(pa.schema([plain_field(f) for f in refused.schema]))
        return scored, refused

    def _validate(self, table: Any, rows: list[int]) -> tuple[list[Any], list[dict[str, Any]]]:
        """The service's record model on `rows` of `table`: (accepted records, index), and
        the refused rows' {"row": index, "error": the reason}."""
        import pyarrow as pa
        from pydantic import ValidationError

        names = [name for name in self.spec.names if name in table.column_names]
        picked = table.select(names).take(pa.array(rows, type=pa.int64()))
        accepted: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index, row in zip(rows, picked.to_pylist(), strict=True):
            # a NaN is a missing value, as a JSON body cannot hold one
            values = {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
            try:
                accepted.append((self.schema.record.model_validate(values), index))
            except ValidationError as error:
                problem = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                    for e in error.errors()
                )
                errors.append({"row": index, "error": problem[:1000]})
        return accepted, errors

    def _by_record(self, table: Any, batch_rows: int) -> tuple[Any, ...]:
        """(kept rows, errors, output columns, unknown inputs), each record validated by the
        record model and its outputs built by `Schema.output_values`."""
        accepted, errors = self._validate(table, list(range(table.num_rows)))
        rows: list[dict[str, Any]] = []
        unknown: list[list[str]] = []
        for start in range(0, len(accepted), batch_rows):
            chunk = [record for record, _ in accepted[start : start + batch_rows]]
            outputs, fields = self.model.score(self.schema.to_columns(chunk))
            rows += [self.schema.output_values(v) for v in outputs.astype(float).tolist()]
            unknown += fields
        names = list(rows[0]) if rows else []
        columns = {name: [row[name] for row in rows] for name in names}
        return [index for _, index in accepted], errors, columns, unknown

    def _by_column(self, table: Any, batch_rows: int) -> tuple[Any, ...]:
        """`_by_record`'s result by the columnar path: the rows it vouches for checked column
        by column, the others by the record model (so a refusal is the service's message)."""
        import numpy as np
        import pyarrow as pa

        columnar = self.columnar
        records = columnar.check_table(self.schema, table)
        doubtful = np.flatnonzero(~records.vouched).tolist()
        accepted, errors = self._validate(table, doubtful) if doubtful else ([], [])
        for record, index in accepted:
            records.fill(index, record)
            records.vouched[index] = True
        kept = np.flatnonzero(records.vouched)
        parts: list[Any] = []
        counts = np.zeros(len(kept), dtype=np.int32)
        names: list[str] = []
        for start in range(0, len(kept), batch_rows):
            columns = columnar.batch_columns(self.spec, records, kept[start : start + batch_rows])
            outputs, rows, fields = columnar.score(self.model, columns)
            parts.append(outputs)
            counts[start + rows] = [len(f) for f in fields]
            names += [name for f in fields for name in f]
        if not parts:
            return kept, errors, {}, []
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        unknown = pa.ListArray.from_arrays(offsets, pa.array(names, type=pa.string()))
        outputs = columnar.output_columns(self.spec, np.concatenate(parts))
        return kept, errors, outputs, unknown


def _arrow(column: Any) -> Any:
    """An output column (a list, an array, or a dict of arrays: a struct) as an Arrow array."""
    import pyarrow as pa

    if isinstance(column, dict):
        return pa.StructArray.from_arrays([_arrow(c) for c in column.values()], list(column))
    return pa.array(column)


def plain_field(field: Any) -> Any:
    """`field` with a 32-bit-offset string, binary or list type for a large one (what pandas
    writes for strings): both backends write the same types, and Spark has no large ones."""
    import pyarrow as pa

    large = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}
    kind = field.type
    if kind in large:
        return field.with_type(large[kind])
    if pa.types.is_large_list(kind):
        return field.with_type(pa.list_(plain_field(kind.value_field)))
    return field


def _beside(through: Any, rows: list[dict[str, Any]]) -> Any:
    """The passed-through columns, then `rows`' own columns."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    for name in reversed(through.column_names):
        table = table.add_column(0, through.field(name), through[name])
    return table


def read_unit(source: str, unit: int, kind: str) -> Any:
    """One unit of `source`: a local path, or a URI with a scheme (`s3://bucket/key`) opened
    through fsspec, whose filesystem reads its credentials from this process's environment."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):  # as maas.scoring.remote.is_uri
        import fsspec

        with fsspec.open(source, "rb") as handle:
            if kind == "parquet":
                return pq.ParquetFile(handle).read_row_group(unit)
            return pcsv.read_csv(handle)
    if kind == "parquet":
        return pq.ParquetFile(source).read_row_group(unit)
    return pcsv.read_csv(source)  # a CSV file is one unit


def _atomic(table: Any, path: Path) -> None:
    """`table` written to `path` whole or not at all: through a temporary file of this
    attempt's own (two attempts of one Spark task may write the same part at once)."""
    import pyarrow.parquet as pq

    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def score(scorer: Scorer, task: dict[str, Any]) -> dict[str, int]:
    """Local backend: one unit into its part files (each written atomically), then its
    marker."""
    table = read_unit(task["source"], task["unit"], task["kind"])
    passed = [c for c in task["pass_through"] if c in table.column_names]
    scored, refused = scorer.score(table, task["offset"], passed, task["batch_rows"])
    if scored is not None:
        _atomic(scored, Path(task["part"]))
    if refused is not None:
        _atomic(refused, Path(task["errors"]))
    counts = {
        "rows": scored.num_rows if scored is not None else 0,
        "errors": refused.num_rows if refused is not None else 0,
    }
    Path(task["done"]).write_text(json.dumps(counts))
    return counts


def score_partition(batches: Iterator[Any], job: dict[str, Any]) -> Iterator[Any]:
    """Spark backend (`mapInArrow`): each unit named in `batches` (a `unit` column of JSON
    tasks) scored into one Arrow batch of `job["output"]`'s schema; its refused rows are
    written by this task itself, as `part-<first row>.parquet` of `job["errors_dir"]` in
    `job["refused"]`'s schema (atomically, by way of a temporary file of its own: a retried
    or speculative attempt replaces the same part whole), so Spark never holds the scored rows
    twice. One Scorer (one ONNX session) per
    partition, from the serving files and code Spark shipped to this executor, checked
    against the digests the driver verified."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    from pyspark import SparkFiles

    load_recorded(Path(SparkFiles.get(job["code_name"])), job["code_digests"])
    model_dir = Path(SparkFiles.get(job["model_name"]))
    scorer = Scorer(model_dir, job["version"], job["model_digests"])
    output, refused_schema = (
        ipc.read_schema(pa.py_buffer(bytes.fromhex(job[name]))) for name in ("output", "refused")
    )
    passed = job["pass_through"]
    for batch in batches:
        for text in batch.column("unit").to_pylist():
            task = json.loads(text)
            table = read_unit(task["source"], task["unit"], task["kind"])
            scored, refused = scorer.score(table, task["offset"], passed, job["batch_rows"])
            if refused is not None:
                part = Path(job["errors_dir"]) / f"part-{task['offset']:015d}.parquet"
                _atomic(_conform(refused, refused_schema), part)
            if scored is not None:
                yield from _conform(scored, output).to_batches()


def _conform(table: Any, schema: Any) -> Any:
    """`table` with `schema`'s columns and types (a column it lacks: nulls)."""
    import pyarrow as pa

    names, rows = table.column_names, table.num_rows
    arrays = [
        table[f.name].cast(f.type) if f.name in names else pa.nulls(rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


if __name__ == "__main__":
    load_recorded(Path(sys.argv[1]))  # the recorded serving code, before any installed maas
    scorers: dict[tuple[str, str], Scorer] = {}
    for line in sys.stdin:
        if line.strip():
            task = json.loads(line)
            key = (task["model_dir"], task["version"])
            if key not in scorers:  # the model loaded once per process
                scorers[key] = Scorer(Path(task["model_dir"]), task["version"])
            print(json.dumps(score(scorers[key], task)), flush=True)
