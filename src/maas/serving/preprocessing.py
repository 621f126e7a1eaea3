"""Preprocessing fitted on the training window and saved as JSON (never a pickle).

Imports numpy only: the serving image runs this same code on request records, and training
imports it from here, so training and serving cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.serving.derive import as_float, clock_sources, derive
from maas.serving.errors import FeatureError
from maas.serving.request import RequestSpec

FORMAT_VERSION = 2  # 2: derived features and the request spec are declared in the file
UNKNOWN_INDEX = 0
MAX_SCALED = 1e6  # standard deviations from the training mean; further counts as missing
COLUMN_WISE_ROWS = 64  # from this many rows on, numeric features are scaled column by column


@dataclass(frozen=True)
class NumericStats:
    mean: float
    std: float
    min: float | None = None  # values outside [min, max] count as missing
    max: float | None = None
    optional: bool = False  # the column may be absent from a record: all values missing


@dataclass(frozen=True)
class Preprocessor:
    categorical: dict[str, list[str]]  # column -> vocabulary; index = position + 1
    numeric: dict[str, NumericStats]
    # feature -> (the raw field it is computed from, the transform: maas.serving.derive)
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)
    request: RequestSpec | None = None  # the service's request and response (the task's)
    format_version: int = FORMAT_VERSION
    _lookup: dict[str, tuple[np.ndarray, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        # Lookup tables built once: scoring one record must not rebuild them.
        for name, vocab in self.categorical.items():
            array = np.asarray(vocab, dtype=str)
            order = np.argsort(array, kind="stable")
            self._lookup[name] = (array[order], (order + 1).astype(np.int64))
        stats = list(self.numeric.values())
        self._lookup["__numeric__"] = (
            np.array([s.mean for s in stats], dtype=np.float64),
            np.array([s.std for s in stats], dtype=np.float64),
            np.array([-np.inf if s.min is None else s.min for s in stats], dtype=np.float64),
            np.array([np.inf if s.max is None else s.max for s in stats], dtype=np.float64),
        )

    def source_of(self, feature: str) -> str:
        """The raw field a feature is read from (itself unless it is derived)."""
        return self.derived[feature][0] if feature in self.derived else feature

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes, the unknown bucket included."""
        return [len(vocab) + 1 for vocab in self.categorical.values()]

    @property
    def numeric_names(self) -> list[str]:
        """Columns of the numeric matrix: scaled values, then missing indicators."""
        return list(self.numeric) + [f"{name}_missing" for name in self.numeric]

    @property
    def optional_inputs(self) -> list[str]:
        """Raw columns a record may leave out (they then count as missing)."""
        names = [self.source_of(n) for n, s in self.numeric.items() if s.optional]
        return list(dict.fromkeys(names))

    @property
    def optional_positions(self) -> tuple[list[int], list[int]]:
        """Columns of the numeric matrix that carry the optional inputs: (scaled values, their
        missing indicators). An absent input is 0 in the first and 1 in the second."""
        scaled = [i for i, stats in enumerate(self.numeric.values()) if stats.optional]
        return scaled, [len(self.numeric) + i for i in scaled]

    @property
    def clock_inputs(self) -> frozenset[str]:
        """Raw columns the derived features read as clock times written hhmm."""
        return clock_sources(self.derived)

    @property
    def input_columns(self) -> list[str]:
        """Raw columns a record must (or may) carry."""
        names: list[str] = []
        for name in [*self.categorical, *self.numeric]:
            source = self.source_of(name)
            if source not in names:
                names.append(source)
        return names

    def unknown_inputs(
        self, codes: np.ndarray, absent: np.ndarray | None = None
    ) -> list[list[str]]:
        """Per row of `transform`'s category codes: the request fields whose value the model
        has not seen in training (scored with the unknown bucket), each named once (features
        that read one date name it once). `absent` (`encode`'s): values that are missing (a
        date left out or none) are scored as missing values are in training, not named."""
        names = [self.source_of(name) for name in self.categorical]
        unknown = codes == UNKNOWN_INDEX
        if absent is not None:
            unknown &= ~absent
        rows: list[list[str]] = [[] for _ in range(len(codes))]
        for row, column in zip(*np.nonzero(unknown), strict=True):
            if names[column] not in rows[row]:
                rows[row].append(names[column])
        return rows

    def encode_categorical(self, name: str, values: np.ndarray) -> np.ndarray:
        return self._encode_categorical(name, as_category_strings(values))

    def _category_codes(self, name: str, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """One categorical feature's codes, and which rows have no value (the string "").
        Numbers (a derived hour, a float-coded category) are turned into strings and looked up
        once per distinct value, then spread back to the rows: the codes of value by value,
        without a string per row (profiled: most of featurizing a batch)."""
        array = np.asarray(values)
        if array.dtype.kind in "fiub" and array.ndim == 1 and len(array) > 1:
            distinct, rows = np.unique(array, return_inverse=True)  # NaNs are one value
            strings = as_category_strings(distinct)
            return self._encode_categorical(name, strings)[rows], (strings == "")[rows]
        strings = as_category_strings(array)
        return self._encode_categorical(name, strings), strings == ""

    def _encode_categorical(self, name: str, strings: np.ndarray) -> np.ndarray:
        sorted_vocab, codes = self._lookup[name]
        if len(sorted_vocab) == 0:
            return np.zeros(len(strings), dtype=np.int64)
        position = np.minimum(np.searchsorted(sorted_vocab, strings), len(sorted_vocab) - 1)
        found = sorted_vocab[position] == strings
        return np.where(found, codes[position], UNKNOWN_INDEX)

    def transform(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Raw columns -> (int64 codes [N, C], float32 numeric [N, 2F])."""
        cat, num, _ = self.encode(columns)
        return cat, num

    def encode(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`transform`, and which category values are missing (bool [N, C]: no value, or a
        date that is none), which `unknown_inputs` does not count as values never seen."""
        optional = {name for name, stats in self.numeric.items() if stats.optional}
        derived = derive_columns(
            columns, [*self.categorical, *self.numeric], self.derived, optional
        )
        coded = [self._category_codes(name, derived[name]) for name in self.categorical]
        n_rows = _row_count(derived)
        if coded:
            cat = np.stack([codes for codes, _ in coded], axis=1)
            absent = np.stack([missing for _, missing in coded], axis=1)
        else:
            cat = np.zeros((n_rows, 0), dtype=np.int64)
            absent = cat.astype(bool)
        if not self.numeric:
            return cat, np.zeros((n_rows, 0), dtype=np.float32), absent
        bounds = self._lookup["__numeric__"]  # means, stds, lows, highs
        width = len(self.numeric)
        numeric = np.empty((n_rows, 2 * width), dtype=np.float32)
        if n_rows < COLUMN_WISE_ROWS:  # a request's few records: one pass over the block
            values = np.empty((n_rows, width), dtype=np.float64)
            for index, name in enumerate(self.numeric):
                values[:, index] = as_float(derived[name], name)
            numeric[:, :width], numeric[:, width:] = _scaled(values, *bounds)
        else:  # a batch: column by column (on the block numpy loops F values at a time)
            for index, name in enumerate(self.numeric):
                column = as_float(derived[name], name)
                scaled = _scaled(column, *(bound[index] for bound in bounds))
                numeric[:, index], numeric[:, width + index] = scaled
        return cat, numeric, absent

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "categorical": self.categorical,
            "numeric": {name: asdict(stats) for name, stats in self.numeric.items()},
            "numeric_columns": self.numeric_names,
            "unknown_index": UNKNOWN_INDEX,
            "derived": {name: list(spec) for name, spec in self.derived.items()},
            "request": self.request.to_dict() if self.request else None,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        if data.get("format_version") != FORMAT_VERSION:
            raise FeatureError(
                f"preprocessing format_version {data.get('format_version')!r} "
                f"is not {FORMAT_VERSION}"
            )
        request = data.get("request")
        return cls(
            categorical={k: [str(v) for v in vocab] for k, vocab in data["categorical"].items()},
            numeric={k: NumericStats(**v) for k, v in data["numeric"].items()},
            derived={k: (str(v[0]), str(v[1])) for k, v in (data.get("derived") or {}).items()},
            request=RequestSpec.from_dict(request) if request else None,
        )

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        return cls.from_dict(json.loads(path.read_text()))


def fit_preprocessor(
    columns: Mapping[str, Any],
    categorical: list[str],
    numeric: Mapping[str, Any],
    min_frequency: int = 1,
    derived_features: Mapping[str, tuple[str, str]] | None = None,
    request: RequestSpec | None = None,
) -> Preprocessor:
    """Fit vocabularies and scaling on the training window only.

    Args:
        numeric: column -> object with `min`/`max` bounds (None for unbounded).
        derived_features: feature -> (raw field, transform) for computed features.
    """
    recipes = dict(derived_features or {})
    derived = derive_columns(columns, [*categorical, *numeric], recipes)
    vocabularies: dict[str, list[str]] = {}
    for name in categorical:
        strings = as_category_strings(derived[name])
        values, counts = np.unique(strings[strings != ""], return_counts=True)
        vocabularies[name] = sorted(str(v) for v in values[counts >= min_frequency])
    stats: dict[str, NumericStats] = {}
    for name, bounds in numeric.items():
        low, high = getattr(bounds, "min", None), getattr(bounds, "max", None)
        values = as_float(derived[name], name)
        ok = ~np.isnan(values)
        if low is not None:
            ok &= values >= low
        if high is not None:
            ok &= values <= high
        valid = values[ok]
        mean = float(valid.mean()) if valid.size else 0.0
        std = float(valid.std()) if valid.size else 1.0
        stats[name] = NumericStats(
            mean=mean,
            std=std if std > 1e-12 and math.isfinite(std) else 1.0,
            min=low,
            max=high,
            optional=bool(getattr(bounds, "optional", False)),
        )
    return Preprocessor(categorical=vocabularies, numeric=stats, derived=recipes, request=request)


def _scaled(values: np.ndarray, *bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    """(standardized values, bad) of numeric features, a block or one column (bounds: means,
    stds, lows, highs to match). Missing or physically impossible (outside [min, max]) is bad:
    the mean and a missing indicator. So is a value over MAX_SCALED standard deviations from
    the mean (a column without bounds): no reading is, and in float32 arithmetic it would
    overflow the network to NaN. A bad value scales to 0.0, what the mean scales to."""
    means, stds, lows, highs = bounds
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (values - means) / stds
        bad = np.isnan(values) | (values < lows) | (values > highs)
        bad |= np.abs(scaled) > MAX_SCALED
    return np.where(bad, 0.0, scaled), bad


def derive_columns(
    columns: Mapping[str, Any],
    names: list[str],
    recipes: Mapping[str, tuple[str, str]],
    optional: set[str] | frozenset[str] = frozenset(),
) -> dict[str, np.ndarray]:
    """Pick `names` out of raw columns, computing derived ones; a missing column is named.

    An absent `optional` column becomes all-NaN (missing) instead of an error.
    """
    result: dict[str, np.ndarray] = {}
    n_rows = next((len(columns[key]) for key in columns), 0)  # dicts and DataFrames alike
    for name in names:
        source, transform = recipes.get(name, (name, ""))
        if source not in columns and name in optional:
            result[name] = np.full(n_rows, np.nan)
            continue
        if source not in columns:
            raise FeatureError(f"column {source!r} is missing (needed for feature {name!r})")
        raw = np.asarray(columns[source])
        result[name] = derive(raw, transform, source) if transform else raw
    return result


def as_category_strings(values: Any) -> np.ndarray:
    """Category values as strings; missing values become "" (the unknown bucket).

    A float-coded category reads as the integer it holds when it is whole (`2.0` -> "2",
    as the same column stored as integers reads) and as itself otherwise (`2.5` -> "2.5",
    never truncated into another category)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        missing = np.isnan(array)
        finite = np.where(missing, 0, array)
        whole = ~missing & (np.mod(finite, 1) == 0) & (np.abs(finite) < 2**53)
        as_int = np.where(whole, array, 0).astype(np.int64).astype(str)
        return np.where(missing, "", np.where(whole, as_int, array.astype(str)))
    if array.dtype.kind in "iub":
        return array.astype(str)
    if array.dtype.kind == "U":  # strings already: each is its own category string
        return array
    return np.array([_category_string(value) for value in array.astype(object)], dtype=str)


def _category_string(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _row_count(columns: Mapping[str, np.ndarray]) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise FeatureError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
