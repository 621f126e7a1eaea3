"""The test window, chosen by size and not by calendar alone: the newest partitions that
together hold at least `data.min_test_rows` rows and, for a classification task, at least
`data.min_test_class_rows` rows of each class (at least `data.test_partitions` partitions),
within `data.max_test_share` of the rows.

A real table whose newest partition held 29 rows (the data spilled a few days into the next
month) had that partition as its whole test set: ROC AUC on 3 positives (issue 28). Now a
small trailing partition is merged with the ones before it, and named (`partial`); a window
that cannot be formed while leaving partitions to train on is an error naming the settings.
`maas task init` (maas.pipeline.data.profile) proposes the settings and shows the window the
same function chooses.

A class that cannot reach its minimum within that share is not required (`too_rare`): a real
table with 31 species, some seen twice, grew its window to 23 of 26 years (2,823 of 3,000
rows) to hold them, leaving 159 rows to train on. The row and partition minimums, and one
row of each binary class, still hold beyond the share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from maas.config import DataParams
from maas.errors import DataError
from maas.pipeline.data import key_hash
from maas.pipeline.data.partitions import Partition, counted_labels, read_partition

log = logging.getLogger(__name__)

PARTIAL = 0.25  # a partition under this share of the median partition's rows is partial
MAX_TEST_SHARE: float = DataParams.model_fields["max_test_share"].default  # params.yaml's


@dataclass(frozen=True)
class WindowRule:
    """What a test window must hold (DataParams' test_partitions, min_test_rows,
    min_test_class_rows); `classes`: the class names (classification), else empty."""

    min_partitions: int = 1
    min_rows: int = 1
    min_class_rows: int = 0
    classes: tuple[str, ...] = ()
    min_each: int = 0  # rows of every class, even one too rare for min_class_rows (binary: 1)
    max_share: float = 1.0  # the class minimums are sought within this share of all rows


@dataclass(frozen=True)
class TestWindow:
    test: list[str]  # partition names, oldest first
    train: list[str]
    rows: int
    class_rows: dict[str, int] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)  # small trailing partitions merged in
    too_rare: list[str] = field(default_factory=list)  # classes that never reach the minimum

    def describe(self) -> str:
        """One line: which partitions, how many rows (of each class), what is partial."""
        names = self.test[0] if len(self.test) == 1 else f"{self.test[0]}..{self.test[-1]}"
        text = f"test window {names} ({len(self.test)} partition(s), {self.rows:,} rows"
        if self.class_rows:
            text += "; " + ", ".join(f"{c} {n:,}" for c, n in self.class_rows.items())
        text += ")"
        if self.partial:
            text += f"; partial period(s) {', '.join(self.partial)} merged with the ones before"
        return text


def class_counts(labels: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    """Rows of each class among label values (class indexes as floats; NaN: unlabeled)."""
    values = np.asarray(labels, dtype=np.float64)
    values = values[~np.isnan(values)].astype(int)
    counts = np.bincount(values, minlength=len(classes))
    return {name: int(counts[i]) for i, name in enumerate(classes)}


def choose_test_window(
    names: Sequence[str],
    labels_of: Callable[[str], np.ndarray],
    rule: WindowRule,
    total_rows: int | None = None,
) -> TestWindow:
    """The newest partitions of `names` (oldest first) that satisfy `rule`, read newest first
    with `labels_of` (a partition's label values; NaN where unlabeled); the older ones train.
    A class whose rows stay below the minimum in the widest window within `rule.max_share`
    of the rows (`total_rows`, labeled or not; default: counted with `labels_of`) cannot be
    required: it is listed in `too_rare`. Raises DataError when no window leaves a partition
    to train on."""
    cache: dict[str, np.ndarray] = {}

    def labels(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = np.asarray(labels_of(name), dtype=np.float64)
        return cache[name]

    classes = list(rule.classes)
    required = classes if rule.min_class_rows > rule.min_each else []
    cap = float("inf")  # no share: no partition needs reading to count the rows
    if rule.max_share < 1:
        cap = rule.max_share * (total_rows or sum(len(labels(n)) for n in names))
    taken = _newest(names, labels, rule, required, cap)
    too_rare: list[str] = []
    if taken is None and required:  # a class too rare within the cap is not required
        reach = _newest(names, labels, rule, [], cap, widest=True) or list(names)
        held = class_counts(np.concatenate([labels(n) for n in reach]), classes)
        too_rare = [c for c in classes if held[c] < rule.min_class_rows]
        required = [c for c in classes if c not in too_rare]
        taken = _newest(names, labels, rule, required, cap) if too_rare else None
    rows = {n: int((~np.isnan(labels(n))).sum()) for n in cache}
    if taken is None:
        raise DataError(window_error(names, rows, labels, rule, required))
    median = float(np.median(list(rows.values())))
    window = np.concatenate([labels(n) for n in taken])
    return TestWindow(
        test=taken,
        train=[n for n in names if n not in taken],
        rows=sum(rows[n] for n in taken),
        class_rows=class_counts(window, classes) if classes else {},
        partial=[n for n in taken[1:] if rows[n] < PARTIAL * median],
        too_rare=too_rare,
    )


def _newest(
    names: Sequence[str],
    labels: Callable[[str], np.ndarray],
    rule: WindowRule,
    required: list[str],
    cap: float,
    widest: bool = False,
) -> list[str] | None:
    """The fewest newest partitions meeting the rule that leave one to train on, or None;
    no partition is added past `cap` rows once the row, partition and min_each minimums
    hold. `widest`: the most newest partitions that meet those minimums within `cap`."""
    taken: list[str] = []
    held = np.zeros(0)
    found = None
    for name in list(reversed(names))[: max(len(names) - 1, 0)]:
        more = np.concatenate([labels(name), held])
        if found is not None and len(more) > cap:
            break
        taken.insert(0, name)
        held = more
        counts = class_counts(held, rule.classes) if rule.classes else {}
        if (
            len(taken) >= rule.min_partitions
            and int((~np.isnan(held)).sum()) >= rule.min_rows
            and all(n >= rule.min_each for n in counts.values())
        ):
            found = list(taken)
            if not widest and all(counts[c] >= rule.min_class_rows for c in required):
                return found
    return found if widest else None


def window_error(
    names: Sequence[str],
    rows: dict[str, int],
    labels: Callable[[str], np.ndarray],
    rule: WindowRule,
    required: list[str],
) -> str:
    """Why no scoreable test window leaves partitions to train on, and what to change."""
    if rule.min_each and rule.classes:
        total = class_counts(np.concatenate([labels(n) for n in names]), rule.classes)
        absent = [c for c in rule.classes if total[c] == 0]
        if absent:
            return (
                f"the label has no {' or '.join(absent)} row in any partition: one class, "
                "nothing to score; data.label defines the classes (--positive / --threshold "
                "at `maas task init`)"
            )
    if len(names) < 2:
        return (
            f"cannot form a test window and a training window from {len(names)} partition(s) "
            f"{list(names)}: a finer data.time.partition (--partition) splits the data"
        )
    newest = list(names[1:])
    held = sum(rows[n] for n in newest)
    counts = class_counts(np.concatenate([labels(n) for n in newest]), rule.classes)
    short = [
        f"{c} {counts[c]}"
        for c in rule.classes
        if counts[c] < (rule.min_class_rows if c in required else rule.min_each)
    ]
    what = f"{held:,} rows" + (f" ({', '.join(short)})" if short else "")
    return (
        f"cannot form a scoreable test window: all partitions but the oldest hold {what}, "
        f"short of data.min_test_rows={rule.min_rows} rows"
        + (f" and data.min_test_class_rows={rule.min_class_rows} per class" if short else "")
        + f" over at least data.test_partitions={rule.min_partitions} partition(s); lower "
        "them in the task file (or --min-test-rows at `maas task init`), or add data"
    )


@dataclass(frozen=True)
class SizedSplit:
    """The partitions that train and test, the window's description, and the frames read
    while choosing it (each partition is read once)."""

    train: list[Partition]
    test: list[Partition]
    window: TestWindow
    frames: dict[str, pd.DataFrame]


def rule_of(data: DataParams) -> WindowRule:
    label = data.label
    classes: tuple[str, ...] = ()
    if label.kind == "binary":
        classes = ("negative", "positive")
    elif label.kind == "multiclass":
        classes = tuple(label.classes)
    return WindowRule(
        data.test_partitions,
        data.min_test_rows,
        data.min_test_class_rows,
        classes,
        min_each=1 if label.kind == "binary" else 0,  # ROC AUC needs both classes
        max_share=data.max_test_share,
    )


def row_count(partition: Partition) -> int:
    """A partition's rows, labeled or not: a parquet file's metadata, else the file read (an
    unreadable file: `read_partition`'s DataError naming it)."""
    if partition.path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(partition.path).metadata.num_rows)
        except Exception:  # empty, truncated, not parquet: reading it names the problem
            pass
    return len(read_partition(partition))


def split_by_size(partitions: list[Partition], data: DataParams) -> SizedSplit:
    """`choose_test_window` over the task's partitions; `data.max_train_partitions` then
    keeps the newest training ones."""
    by_name = {p.name: p for p in partitions}
    frames: dict[str, pd.DataFrame] = {}

    def labels_of(name: str) -> np.ndarray:
        frames[name] = frame = read_partition(by_name[name])
        if data.label.column not in frame.columns:  # no labeled row here: validation then
            return np.full(len(frame), np.nan)  # names the missing column (a blocking rule)
        return counted_labels(frame, data.label)  # as training and the gate count them

    rule = rule_of(data)
    total = sum(row_count(p) for p in partitions) if rule.max_share < 1 else None
    window = choose_test_window(list(by_name), labels_of, rule, total)
    if data.time is None:
        log.info("data.split: %s", key_hash.describe(data.split))
    log.info("%s", window.describe())
    if window.too_rare:
        log.warning(
            "classes %s are too rare to hold data.min_test_class_rows=%d test rows within "
            "data.max_test_share=%g of the rows: they are scored on what the window holds",
            window.too_rare,
            data.min_test_class_rows,
            data.max_test_share,
        )
    train = [by_name[n] for n in window.train]
    if data.max_train_partitions is not None:
        train = train[-data.max_train_partitions :]
    return SizedSplit(train, [by_name[n] for n in window.test], window, frames)
