"""Dates written as digits (`data.time.format`): 20130105 (yyyymmdd) or 201301 (yyyymm), held
as integers, as floats (20130105.0: an integer column with missing values) or as strings.
`maas task init --time` reads such a column as dates when every value is a valid date in one
form with a plausible year; a plain year (2013) or a day number (1..365) stays an ordered
number (maas.pipeline.data.profile_time)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from maas.config.task_spec import DateCode

# the digits each form has, and how strptime reads them
FORMS: dict[DateCode, tuple[int, str]] = {"yyyymmdd": (8, "%Y%m%d"), "yyyymm": (6, "%Y%m")}
YEARS = (1800, 2200)  # a value whose year lies outside is a number, not a date


def parse_date_codes(values: pd.Series, form: DateCode) -> pd.Series:
    """Each value as a naive datetime64 (yyyymm: the month's first day); NaT where it is
    missing, not a whole non-negative number of the form's digits, or no date (20131332,
    19970000, 20230229)."""
    digits, pattern = FORMS[form]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    low, high = 10 ** (digits - 1), 10**digits
    whole = np.isfinite(numbers) & (np.mod(numbers, 1) == 0) & (numbers >= low) & (numbers < high)
    text = pd.Series(
        [str(int(n)) if ok else None for n, ok in zip(numbers, whole, strict=True)],
        index=values.index,
        dtype=object,
    )
    return pd.to_datetime(text, format=pattern, errors="coerce").astype("datetime64[ns]")


def detect_date_code(values: pd.Series) -> DateCode | None:
    """The form every present value of `values` is a valid date in, with years in YEARS;
    None when any is not (a year 2013, a day number, an identifier, mixed lengths, a negative
    number, an impossible date) or there is no value."""
    present = values.dropna()
    if present.empty:
        return None
    for form in FORMS:
        times = parse_date_codes(present, form)
        if times.isna().any():
            continue
        years = times.dt.year
        if years.min() >= YEARS[0] and years.max() <= YEARS[1]:
            return form
    return None
