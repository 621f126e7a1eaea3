"""The screen: the row-wise expectations run once on all new partitions together.

A column map expectation (not null, between, in set, match regex) judges each row by its value
alone, and with `mostly` 1 it passes exactly when no row is unexpected. The partitions'
prepared batches stacked (`pd.concat`) hold each partition's rows unchanged, so an expectation
that passes on the stack has no unexpected row in any partition: each partition's outcome is
written without running it (outcome.passed_outcome). One that fails on the stack says nothing
about which partition failed, so it runs per partition as before. Exactness needs each row
judged on the stack as in its partition, hence the conditions in `screened`: the column in
every batch (a missing one would be NaN on the stack, and NaN is skipped), of one dtype in
every batch and on the stack (GX picks its comparison by dtype), no row condition.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

ROW_WISE = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
}
# pandas' isin switches from its hash table to np.isin above this many rows (numeric dtypes):
# the stack must judge a value set the way each partition's batch does
ISIN_HASH_TABLE_ROWS = 1_000_000
# the rows one screen stacks: memory holds a chunk's prepared batches and their stack, not the
# whole table's (and a stack within pandas' hash-table `isin`)
SCREEN_ROWS = ISIN_HASH_TABLE_ROWS
NO_COLUMN = "_nocolumn"


def chunks(frames: list[Any], max_rows: int) -> list[list[Any]]:
    """Consecutive (partition, frame) pairs, as many in each chunk as fit in `max_rows` rows
    (a partition larger alone is a chunk of its own; 0: every partition alone, no screen)."""
    found: list[list[Any]] = []
    rows = 0
    for pair in frames:
        if found and rows + len(pair[1]) <= max_rows:
            found[-1].append(pair)
            rows += len(pair[1])
        else:
            found.append([pair])
            rows = len(pair[1])
    return found


def stack(batches: list[pd.DataFrame]) -> pd.DataFrame:
    """The prepared batches one after the other (the screen's batch)."""
    return pd.concat(batches, ignore_index=True)


def screened(
    expectations: list[Any], batches: list[pd.DataFrame], stacked: pd.DataFrame
) -> list[int]:
    """Positions of the expectations the screen may decide for every batch."""
    chosen = []
    for index, expectation in enumerate(expectations):
        config = expectation.configuration
        column = config.kwargs.get("column")
        if config.type not in ROW_WISE or not isinstance(column, str):
            continue
        if config.kwargs.get("mostly") not in (None, 1, 1.0) or config.kwargs.get("row_condition"):
            continue
        if column not in stacked.columns or any(column not in b.columns for b in batches):
            continue
        dtype = stacked[column].dtype
        if any(b[column].dtype != dtype for b in batches):
            continue
        if (
            config.type == "expect_column_values_to_be_in_set"
            and not pd.api.types.is_object_dtype(dtype)
            and len(stacked) > ISIN_HASH_TABLE_ROWS
        ):
            continue
        chosen.append(index)
    return chosen


def processing_order(expectations: list[Any]) -> list[int]:
    """The order of a suite's results when none raised: GX 1.x validates a suite grouped by
    column, the columns in order of first appearance (Validator.process_expectations_for_
    validation). Checked against each per-partition run (`matches_order`)."""
    groups: dict[str, list[int]] = {}
    for index, expectation in enumerate(expectations):
        column = expectation.configuration.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else NO_COLUMN, []).append(index)
    return [index for group in groups.values() for index in group]


def raised(result: Any) -> bool:
    """Whether a result comes from an exception (its own, or a metric's it needed)."""
    info = result.exception_info
    return bool(info) and info.get("raised_exception") is not False
