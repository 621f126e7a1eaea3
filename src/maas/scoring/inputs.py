"""What a batch job reads: a Parquet or CSV file, a folder of them or a glob, cut into units
(a Parquet row group; a CSV file is one unit), each with the offset of its first row, and
checked before any row is scored: every file readable, every required field a column."""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from maas.errors import ScoringError

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class Unit:
    source: str
    kind: str  # parquet | csv
    unit: int  # the row group (Parquet) or 0 (a CSV file)
    offset: int  # the input row number of its first row, across all files
    rows: int


def input_files(uri: str) -> list[Path]:
    """The files `uri` names: one file, every Parquet/CSV file in a folder, or a glob."""
    path = Path(uri)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
    elif any(char in uri for char in "*?["):
        found = sorted(Path(p) for p in glob.glob(uri, recursive=True))
    elif path.is_file():
        found = [path]
    else:
        raise ScoringError(f"--input {uri}: no such file or folder")
    found = [p for p in found if p.is_file()]
    unknown = [p.name for p in found if p.suffix.lower() not in SUFFIXES]
    if unknown:
        raise ScoringError(f"--input {uri}: {unknown[0]} is neither Parquet nor CSV")
    if not found:
        raise ScoringError(f"--input {uri}: no Parquet or CSV file there")
    return found


def plan(files: list[Path], required: list[str]) -> tuple[list[Unit], list[str]]:
    """The units of `files`, in order, and the columns every file has; a file that cannot be
    read, or lacks one of the `required` columns, stops the job before anything is scored."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    units: list[Unit] = []
    common: list[str] | None = None
    offset = 0
    for path in files:
        kind = SUFFIXES[path.suffix.lower()]
        try:
            if kind == "parquet":
                meta = pq.ParquetFile(path)
                columns = meta.schema_arrow.names
                groups = [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)]
            else:
                table = pcsv.read_csv(path)
                columns, groups = table.column_names, [table.num_rows]
        except Exception as error:  # pyarrow's errors name the problem
            raise ScoringError(f"{path} cannot be read as {kind}: {error}") from None
        if len(set(columns)) != len(columns):
            raise ScoringError(f"{path} has duplicate column names")
        absent = [name for name in required if name not in columns]
        if absent:
            raise ScoringError(f"{path} lacks the column(s) {', '.join(absent)} the model requires")
        for index, rows in enumerate(groups):
            units.append(Unit(str(path), kind, index, offset, rows))
            offset += rows
        common = list(columns) if common is None else [c for c in common if c in columns]
    return units, common or []


def fingerprint(version: str, units: list[Unit], pass_through: list[str]) -> str:
    """What a resumed job must match: the version, the inputs (paths, sizes, times) and the
    columns passed through."""
    stats = {
        u.source: [Path(u.source).stat().st_size, Path(u.source).stat().st_mtime_ns] for u in units
    }
    body = {"version": version, "units": [asdict(u) for u in units], "stats": stats}
    body["pass_through"] = pass_through
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
