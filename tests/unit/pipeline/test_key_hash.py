"""The split of a table with no time column: buckets by a sha256 of the key (or of the whole
row), stable across runs and processes, balanced, one key always on one side; the buckets are
partitions that ingest writes, validation checks and the test window takes by size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maas.config import DataParams
from maas.config.sections import ValidationParams
from maas.config.task_spec import SplitSpec
from maas.errors import DataError
from maas.pipeline.data import key_hash
from maas.pipeline.data.partitions import split_latest, task_partitions
from maas.pipeline.data.sources import ingest_partitions
from maas.pipeline.data.test_window import choose_test_window, rule_of, split_by_size
from maas.pipeline.validation.batch import PARTITION_COLUMN, prepare_batch

KEYED = SplitSpec(by="key_hash", buckets=10, key=["id"])
WHOLE_ROW = SplitSpec(by="key_hash", buckets=10)


def people(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"p{i:05d}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["a", "b", "c"], n),
            "bought": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )


def test_a_key_lands_in_the_same_bucket_in_another_process() -> None:
    frame = people(200)
    here = key_hash.row_buckets(frame, KEYED, "bought").astype(int).tolist()
    code = (
        "import json, sys, pandas as pd\n"
        "from maas.config.task_spec import SplitSpec\n"
        "from maas.pipeline.data.key_hash import row_buckets\n"
        "frame = pd.DataFrame({'id': [f'p{i:05d}' for i in range(200)], 'bought': 'no'})\n"
        "split = SplitSpec(by='key_hash', buckets=10, key=['id'])\n"
        "print(json.dumps(row_buckets(frame, split, 'bought').astype(int).tolist()))\n"
    )
    # another interpreter with another PYTHONHASHSEED: Python's salted hash() would differ
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here
    assert key_hash.row_buckets(frame, KEYED, "bought").astype(int).tolist() == here


def test_buckets_are_balanced_and_a_key_is_on_one_side_whatever_else_changes() -> None:
    frame = people(5000)
    buckets = key_hash.row_buckets(frame, KEYED, "bought")
    counts = np.bincount(buckets.astype(int), minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # 500 each, within 20%
    changed = frame.assign(age=frame["age"] + 1, city="z", bought="yes").iloc[::-1]
    again = key_hash.row_buckets(changed, KEYED, "bought")
    assert (again.sort_index() == buckets).all()  # the key alone decides, in any row order
    as_numbers = pd.DataFrame({"id": [7, 8.0, None], "bought": "no"})
    as_text = pd.DataFrame({"id": ["7", "8", None], "bought": "no"})
    split = SplitSpec(by="key_hash", key=["id"])
    numbers = key_hash.row_buckets(as_numbers, split, "bought")
    texts = key_hash.row_buckets(as_text, split, "bought")
    assert numbers[:2].tolist() == texts[:2].tolist()  # 8.0 is the key "8", as categories read
    assert np.isnan(numbers[2]) and np.isnan(texts[2])  # no key: no bucket


def test_without_a_key_identical_rows_land_in_one_bucket() -> None:
    frame = people(300).drop(columns="id")
    doubled = pd.concat([frame, frame.assign(bought="yes")], ignore_index=True)
    buckets = key_hash.row_buckets(doubled, WHOLE_ROW, "bought")
    assert (buckets[:300].to_numpy() == buckets[300:].to_numpy()).all()  # label not hashed
    reordered = doubled[list(reversed(doubled.columns))]
    assert (key_hash.row_buckets(reordered, WHOLE_ROW, "bought") == buckets).all()
    assert len(set(buckets)) == 10


def test_a_key_with_missing_values_is_one_line_naming_it() -> None:
    frame = people(50)
    frame.loc[[3, 9], "id"] = None
    with pytest.raises(DataError) as caught:
        key_hash.require_keys(frame, KEYED, "orders.csv")
    message = str(caught.value)
    assert "\n" not in message and "'id' (2 rows)" in message and "--key" in message
    with pytest.raises(DataError, match=r"key column\(s\) \['nope'\] not in the data"):
        key_hash.row_buckets(frame, SplitSpec(by="key_hash", key=["nope"]), "bought")


def hashed_task(tmp_path: Path, frame: pd.DataFrame, **data: object) -> DataParams:
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return DataParams.model_validate(
        {
            "raw_dir": tmp_path / "raw",
            "source": {"kind": "file", "path": path},
            "split": {"by": "key_hash", "buckets": 10, "key": ["id"]},
            "label": {"column": "bought", "kind": "binary", "positive": "yes"},
        }
        | data
    )


def test_ingest_writes_buckets_and_the_test_window_takes_the_last_by_size(tmp_path: Path) -> None:
    data = hashed_task(tmp_path, people(), min_test_rows=300, min_test_class_rows=100)
    ingest_partitions(data)
    parts = task_partitions(data)
    assert [p.name for p in parts] == [f"hash-{i}" for i in range(10)]
    frames = {p.name: pd.read_parquet(p.path) for p in parts}
    assert sum(len(f) for f in frames.values()) == 2000
    for name, frame in frames.items():  # every row where its key hashes
        assert (key_hash.row_buckets(frame, data.split, "bought") == int(name[5:])).all()
    sized = split_by_size(parts, data)
    test = pd.concat([frames[n] for n in sized.window.test])
    assert sized.window.test == [p.name for p in parts][-len(sized.window.test) :]
    assert len(test) >= 300 and (test["bought"] == "yes").sum() >= 100
    fewer = choose_test_window(
        [p.name for p in parts],
        lambda n: (frames[n]["bought"] == "yes").to_numpy(dtype=float),
        rule_of(data.model_copy(update={"min_test_rows": 1, "min_test_class_rows": 1})),
    )
    assert fewer.test == ["hash-9"]  # the fewest newest buckets meeting the rule
    assert not set(test["id"]) & set(pd.concat(frames[n] for n in sized.window.train)["id"])


def test_a_row_in_the_wrong_bucket_fails_its_partition_check(tmp_path: Path) -> None:
    data = hashed_task(tmp_path, people(400))
    ingest_partitions(data)
    first, second = task_partitions(data)[:2]
    moved = pd.concat([pd.read_parquet(first.path), pd.read_parquet(second.path).head(1)])
    validation = ValidationParams.model_validate(
        {"columns": {}, "row_count": {"min": 0, "max": 10_000}}
    )
    batch = prepare_batch(moved, validation, data, first)
    assert batch[PARTITION_COLUMN].tolist() == [1.0] * (len(moved) - 1) + [0.0]


def test_the_validation_slice_of_a_hashed_window_is_its_newest_rows() -> None:
    window = pd.DataFrame({"partition": ["hash-0"] * 6 + ["hash-1"] * 4, "x": range(10)})
    fit, val = split_latest(window, 0.2, None)
    assert fit["x"].tolist() == list(range(8)) and val["x"].tolist() == [8, 9]


def test_a_task_without_a_time_needs_the_key_hash_split() -> None:
    label = {"column": "bought", "kind": "binary", "positive": "yes"}
    with pytest.raises(ValueError, match="data.split: {by: key_hash}"):
        DataParams.model_validate({"label": label})
    with pytest.raises(ValueError, match="key_hash is for a table without data.time"):
        DataParams.model_validate(
            {"label": label, "time": {"column": "t"}, "split": {"by": "key_hash"}}
        )
    data = DataParams.model_validate({"label": label, "split": {"by": "key_hash"}})
    assert data.partitioning == "bucket" and data.time_columns == []


def test_the_runs_report_says_the_test_window_is_hash_buckets() -> None:
    from types import SimpleNamespace

    from maas.pipeline.report import window_title

    hashed = SimpleNamespace(test_partitions=["hash-8", "hash-9"], test_rows=612)
    assert window_title(hashed) == (  # type: ignore[arg-type]
        "Test partition hash-8, hash-9 (612 rows): buckets of a hash of the key "
        "(no time column, data.split)"
    )
    dated = SimpleNamespace(test_partitions=["2013-12"], test_rows=900)
    assert window_title(dated) == "Test partition 2013-12 (900 rows)"  # type: ignore[arg-type]


def test_served_records_of_a_task_without_a_calendar_group_by_the_month_served() -> None:
    from maas.pipeline.data.partitions import served_frequency

    label = {"column": "bought", "kind": "binary", "positive": "yes"}
    hashed = DataParams.model_validate({"label": label, "split": {"by": "key_hash"}})
    yearly = {"column": "Year", "partition": "number"}
    numbered = DataParams.model_validate({"label": label, "time": yearly})
    weekly = DataParams.model_validate(
        {"label": label, "time": {"column": "t", "partition": "week"}}
    )
    assert served_frequency(hashed) == served_frequency(numbered) == "month"
    assert served_frequency(weekly) == "week"
