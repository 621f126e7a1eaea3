"""What a batch job reads: a Parquet or CSV file, a folder of them or a glob, cut into units
(a Parquet row group; a CSV file is one unit), each with the offset of its first row, and
checked before any row is scored: every file readable, every required field a column. A URI
with a scheme (`s3://bucket/prefix/`) is read through fsspec (`maas.scoring.remote`)."""

from __future__ import annotations

import glob
import hashlib
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from maas.errors import ScoringError
from maas.scoring import remote

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class Unit:
    source: str
    kind: str  # parquet | csv
    unit: int  # the row group (Parquet) or 0 (a CSV file)
    offset: int  # the input row number of its first row, across all files
    rows: int


def input_files(uri: str) -> list[str]:
    """The files `uri` names: one file, every Parquet/CSV file in a folder, or a glob; for a
    URI with a scheme, the objects it names, as URIs."""
    if remote.is_uri(uri):
        return _checked(uri, remote.remote_files(uri, SUFFIXES))
    path = Path(uri)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
    elif any(char in uri for char in "*?["):
        found = sorted(Path(p) for p in glob.glob(uri, recursive=True))
    elif path.is_file():
        found = [path]
    else:
        raise ScoringError(f"--input {uri}: no such file or folder")
    return _checked(uri, [str(p) for p in found if p.is_file()])


def _checked(uri: str, found: list[str]) -> list[str]:
    unknown = [name for name in found if _kind(name) is None]
    if unknown:
        name = unknown[0].rsplit("/", 1)[-1]
        raise ScoringError(f"--input {remote.shown(uri)}: {name} is neither Parquet nor CSV")
    if not found:
        raise ScoringError(f"--input {remote.shown(uri)}: no Parquet or CSV file there")
    return found


def _kind(name: str) -> str | None:
    return SUFFIXES.get(PurePosixPath(name).suffix.lower())


def plan(files: list[str], required: list[str]) -> tuple[list[Unit], list[str]]:
    """The units of `files`, in order, and the columns every file has; a file that cannot be
    read, or lacks one of the `required` columns, stops the job before anything is scored."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    units: list[Unit] = []
    common: list[str] | None = None
    offset = 0
    for source in files:
        kind = SUFFIXES[PurePosixPath(source).suffix.lower()]
        path = remote.shown(source)
        try:
            with _opened(source) as handle:
                if kind == "parquet":
                    meta = pq.ParquetFile(handle)
                    columns = meta.schema_arrow.names
                    groups = [
                        meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)
                    ]
                else:
                    table = pcsv.read_csv(handle)
                    columns, groups = table.column_names, [table.num_rows]
        except Exception as error:  # pyarrow's (and the filesystem's) errors name the problem
            raise ScoringError(f"{path} cannot be read as {kind}: {error}") from None
        if len(set(columns)) != len(columns):
            raise ScoringError(f"{path} has duplicate column names")
        absent = [name for name in required if name not in columns]
        if absent:
            raise ScoringError(f"{path} lacks the column(s) {', '.join(absent)} the model requires")
        for index, rows in enumerate(groups):
            units.append(Unit(source, kind, index, offset, rows))
            offset += rows
        common = list(columns) if common is None else [c for c in common if c in columns]
    return units, common or []


def _opened(source: str) -> Any:
    """A local path as itself; a URI's object opened through its filesystem."""
    if not remote.is_uri(source):
        return nullcontext(source)
    fs, path = remote.filesystem(source)
    return fs.open(path, "rb")


def fingerprint(version: str, units: list[Unit], pass_through: list[str]) -> str:
    """What a resumed job must match: the version, the inputs (paths, sizes, times; for a URI
    the size and ETag or time its filesystem gives, credentials left out) and the columns
    passed through."""
    stats: dict[str, list[Any]] = {}
    for source in dict.fromkeys(u.source for u in units):
        if remote.is_uri(source):
            stats[remote.shown(source)] = remote.stamp(source)
        else:
            stat = Path(source).stat()
            stats[source] = [stat.st_size, stat.st_mtime_ns]
    listed = [{**asdict(u), "source": remote.shown(u.source)} for u in units]
    body = {"version": version, "units": listed, "stats": stats}
    body["pass_through"] = pass_through
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
