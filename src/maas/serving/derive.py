"""The closed vocabulary of derived features (a task file names them, it never carries code):
clock times written hhmm, date parts, and cyclical encodings, computed with numpy alone on
training rows and on request records alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from maas.serving.errors import FeatureError


def as_float(values: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise FeatureError(f"column {name!r} must be numeric: {error}") from None
    except OverflowError:  # an integer past float64's range (10**400); requests cannot send one
        raise FeatureError(f"column {name!r} holds a number too large for a float") from None


# The shape of an ISO 8601 date or date-time that requests must have (a `datetime` field):
# 2024-03-04, 2024-03-04T10:00, 2024-03-04 10:00:00.5Z, 2024-03-04T10:00:00+01:00. The day is
# one its month has (February 29 in leap years only) and digits are ASCII (`\d` is any
# Unicode digit): a date that is none (2023-02-29) is refused naming the field, not scored as
# a missing value.
_MONTH_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31"
_LEAP_YEAR = r"[0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00"
ISO_DATETIME = (
    rf"^([0-9]{{4}}-({_MONTH_DAY})|({_LEAP_YEAR})-02-29)"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?$"
)


def as_datetime(values: Any) -> np.ndarray:
    """datetime64[m] (naive; a trailing `Z` or zone offset is read as UTC). Missing values and
    values that are no date (2023-02-29, "soon") are NaT: missing, as in training."""
    array = np.asarray(values)
    if array.dtype.kind == "M":
        return array.astype("datetime64[m]")
    result = np.full(len(array), np.datetime64("NaT"), dtype="datetime64[m]")
    for index, value in enumerate(array.tolist()):
        if value is None or value == "" or (isinstance(value, float) and value != value):
            continue
        text = str(value).strip().replace(" ", "T")
        offset = np.timedelta64(0, "m")
        if text.endswith("Z"):
            text = text[:-1]
        elif len(text) > 10 and text[-6] in "+-" and text[-3] == ":" and text[-5:-3].isdigit():
            hours, minutes = text[-5:-3], text[-2:]
            if minutes.isdigit():
                sign = 1 if text[-6] == "+" else -1
                offset = sign * np.timedelta64(int(hours) * 60 + int(minutes), "m")
                text = text[:-6]
        try:
            result[index] = np.datetime64(text, "m") - offset
        except ValueError:
            continue
    return result


def _hhmm_hour(values: np.ndarray) -> np.ndarray:
    return np.floor_divide(values, 100)


def _hhmm_minutes(values: np.ndarray) -> np.ndarray:
    return np.floor_divide(values, 100) * 60 + np.mod(values, 100)


def _date_part(unit: str) -> Callable[[np.ndarray], np.ndarray]:
    def part(times: np.ndarray) -> np.ndarray:
        days = times.astype("datetime64[D]")
        if unit == "hour":
            value = (times - days).astype("timedelta64[h]").astype(np.float64)
        elif unit == "day_of_week":  # 1970-01-01 was a Thursday; Monday = 0
            value = np.mod(days.astype(np.int64) + 3, 7).astype(np.float64)
        elif unit == "day_of_month":
            value = (days - times.astype("datetime64[M]")).astype(np.float64) + 1
        elif unit == "day_of_year":
            value = (days - times.astype("datetime64[Y]")).astype(np.float64) + 1
        else:  # month
            months = times.astype("datetime64[M]") - times.astype("datetime64[Y]")
            value = months.astype(np.float64) + 1
        return np.where(np.isnat(times), np.nan, value)

    return part


PERIODS = {"hour": 24.0, "day_of_week": 7.0, "day_of_year": 365.25}
CLOCK = {"hhmm_hour": _hhmm_hour, "hhmm_minutes": _hhmm_minutes}
DATE_PARTS = ("hour", "day_of_week", "day_of_month", "day_of_year", "month")


def reads_dates(transform: str) -> bool:
    """Whether the transform reads its source as a date or date-time."""
    return transform not in CLOCK


def clock_sources(derived: Mapping[str, tuple[str, str]]) -> frozenset[str]:
    """The raw fields that derived features (feature -> (source, transform)) read as clock
    times written hhmm: a request's value there must be one (minutes 0-59, hours 0-23)."""
    return frozenset(source for source, transform in derived.values() if transform in CLOCK)


def derive(raw: np.ndarray, transform: str, source: str) -> np.ndarray:
    """The derived feature `transform` of the raw column `source` (float; NaN = missing)."""
    if transform in CLOCK:
        return CLOCK[transform](as_float(raw, source))
    if transform in DATE_PARTS:
        return _date_part(transform)(as_datetime(raw))
    unit, _, wave = transform.rpartition("_")
    if unit in PERIODS and wave in ("sin", "cos"):
        angle = 2 * np.pi * _date_part(unit)(as_datetime(raw)) / PERIODS[unit]
        return np.sin(angle) if wave == "sin" else np.cos(angle)
    raise FeatureError(f"unknown derived feature transform {transform!r} (of {source!r})")
