"""The test window by size (issue 28 item 2): a small trailing partition is merged and named,
a class too thin in the newest partition pulls in older ones, and a window that cannot be
formed is an error naming the settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maas.config import DataParams
from maas.errors import DataError
from maas.pipeline.data.partitions import list_partitions
from maas.pipeline.data.test_window import WindowRule, choose_test_window, split_by_size

BINARY = ("negative", "positive")


def binary(n: int, positives: int) -> np.ndarray:
    return np.array([1.0] * positives + [0.0] * (n - positives))


def test_a_29_row_trailing_partition_is_merged_and_named() -> None:
    """The real table of issue 28: its newest month held 29 rows and 3 positives."""
    labels = {"2024-01": binary(900, 90), "2024-02": binary(950, 95), "2024-03": binary(29, 3)}
    window = choose_test_window(list(labels), labels.__getitem__, WindowRule(1, 200, 20, BINARY))
    assert window.test == ["2024-02", "2024-03"] and window.train == ["2024-01"]
    assert window.rows == 979 and window.class_rows == {"negative": 881, "positive": 98}
    assert window.partial == ["2024-03"]
    assert "2024-02..2024-03" in window.describe() and "partial" in window.describe()


def test_a_rare_class_pulls_in_older_partitions() -> None:
    labels = {f"2024-{m:02d}": binary(500, 4) for m in range(1, 11)}
    rule = WindowRule(1, 100, 10, BINARY, max_share=0.3)
    window = choose_test_window(list(labels), labels.__getitem__, rule)
    assert len(window.test) == 3 and window.class_rows["positive"] == 12 and not window.too_rare


def test_classes_that_cannot_reach_the_minimum_within_the_share_are_too_rare() -> None:
    """rodent-species (issue 28): 26 years, species seen a handful of times each; the window
    grew to 23 years (2,823 of 3,000 rows) to hold 5 of each, leaving 159 rows to train on.
    Within 30% of the rows the common classes reach the minimum; the others are named."""
    classes = ("common", "thin", "once")
    years = {str(1977 + i): np.array([0.0] * 100 + [1.0] * (i % 4 == 0)) for i in range(26)}
    years["1977"] = np.append(years["1977"], 2.0)  # in the oldest year only
    rule = WindowRule(1, 100, 5, classes, max_share=0.3)
    window = choose_test_window(list(years), years.__getitem__, rule)
    assert window.test == ["2002"] and window.too_rare == ["thin", "once"]
    assert len(window.train) == 25
    # without the cap the window still grows as far as the data allows
    whole = choose_test_window(list(years), years.__getitem__, WindowRule(1, 100, 5, classes))
    assert len(whole.test) == 18 and whole.too_rare == ["once"]
    # the row minimum holds beyond the share: 2,000 rows are 77% of them
    wide = choose_test_window(
        list(years), years.__getitem__, WindowRule(1, 2000, 5, classes, max_share=0.3)
    )
    assert len(wide.test) == 20 and wide.too_rare == ["once"]
    assert "thin" not in wide.too_rare and wide.class_rows["thin"] == 5


def test_a_window_that_leaves_nothing_to_train_is_an_error_naming_the_settings() -> None:
    labels = {"2024-01": binary(100, 10), "2024-02": binary(100, 10)}
    with pytest.raises(DataError, match="cannot form a scoreable test window.*min_test_rows=500"):
        choose_test_window(list(labels), labels.__getitem__, WindowRule(1, 500, 0, BINARY))
    # no positive in the newest partition: ROC AUC cannot be computed on it
    labels["2024-02"] = binary(100, 0)
    with pytest.raises(DataError, match=r"positive 0\).*min_test_class_rows=5 "):
        choose_test_window(list(labels), labels.__getitem__, WindowRule(1, 50, 5, BINARY, 1))
    with pytest.raises(DataError, match="from 1 partition"):
        choose_test_window(["2024-01"], labels.__getitem__, WindowRule())


def test_a_class_too_rare_anywhere_is_named_not_required() -> None:
    classes = ("a", "b", "c")
    labels = {f"2024-0{m}": np.array([0.0] * 60 + [1.0] * 30 + [2.0] * (m == 1)) for m in (1, 2, 3)}
    window = choose_test_window(list(labels), labels.__getitem__, WindowRule(1, 50, 5, classes))
    assert window.test == ["2024-03"] and window.too_rare == ["c"]
    # binary: a class too rare for the minimum still needs one row (min_each) to be scored
    two = {"2024-01": binary(100, 1), "2024-02": binary(100, 1), "2024-03": binary(100, 0)}
    window = choose_test_window(list(two), two.__getitem__, WindowRule(1, 50, 5, BINARY, 1))
    assert window.test == ["2024-02", "2024-03"] and window.too_rare == ["positive"]


def test_regression_counts_rows_and_the_run_reads_each_partition_once(tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for month, n in (("2024-01", 300), ("2024-02", 300), ("2024-03", 40)):
        pd.DataFrame({"y": np.arange(n, dtype=float), "t": f"{month}-05"}).to_parquet(
            raw / f"{month}.parquet"
        )
    data = DataParams.model_validate(
        {
            "raw_dir": raw,
            "time": {"column": "t", "partition": "month"},
            "label": {"column": "y", "kind": "regression"},
            "min_test_rows": 100,
        }
    )
    sized = split_by_size(list_partitions(raw, "month"), data)
    assert [p.name for p in sized.test] == ["2024-02", "2024-03"]
    assert [p.name for p in sized.train] == ["2024-01"]
    assert set(sized.frames) == {"2024-02", "2024-03"}  # the training one is read later


@pytest.mark.parametrize("damage", [b"", b"PAR1 half a file"], ids=["empty", "truncated"])
def test_an_unreadable_partition_is_named_while_the_rows_are_counted(tmp_path, damage) -> None:
    """The share's row count reads each partition's metadata: an empty or truncated file is the
    DataError naming it that reading it gives, not pyarrow's own exception."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for month in ("2024-01", "2024-02"):
        pd.DataFrame({"y": ["yes", "no"] * 60, "t": f"{month}-05"}).to_parquet(
            raw / f"{month}.parquet"
        )
    (raw / "2024-03.parquet").write_bytes(damage)
    data = DataParams.model_validate(
        {
            "raw_dir": raw,
            "time": {"column": "t", "partition": "month"},
            "label": {"column": "y", "kind": "binary", "positive": "yes"},
        }
    )
    with pytest.raises(DataError, match=r"partition 2024-03 .* is unreadable"):
        split_by_size(list_partitions(raw, "month"), data)


def test_a_run_without_a_scoreable_window_stops_at_validate_and_leaves_no_windows(
    small_params, tmp_path
) -> None:
    """Nothing for the train, evaluate or register stages: the previous run's windows go too."""
    from maas.pipeline.data.windows import TRAIN_FILE
    from maas.pipeline.stages import validate_data
    from tests.helpers import make_flights

    raw = tmp_path / "raw"
    raw.mkdir()
    for month in (10, 11, 12):
        make_flights(150, month=month, seed=month).to_parquet(raw / f"2013-{month}.parquet")
    data = small_params.data.model_copy(
        update={"raw_dir": raw, "processed_dir": tmp_path / "processed", "min_test_rows": 1000}
    )
    data.processed_dir.mkdir()
    (data.processed_dir / TRAIN_FILE).write_text("the previous run's")
    with pytest.raises(DataError, match="all partitions but the oldest hold 300 rows"):
        validate_data(data, small_params.validation)
    assert not (data.processed_dir / TRAIN_FILE).exists()
