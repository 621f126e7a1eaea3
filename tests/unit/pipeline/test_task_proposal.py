"""What `maas task init` proposes from the data (issue 28 items 2, 3, 5) and the bad files it
refuses in one line naming the flag, writing nothing (at `maas run` too)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maas.cli import app
from maas.cli.common import Project
from maas.config import DataParams
from maas.errors import DataError
from maas.pipeline.data.profile import TaskRequest, profile
from maas.pipeline.data.proposal import propose_model, propose_steps, propose_window
from maas.pipeline.data.sources import read_table, split_by_period
from maas.pipeline.data.test_window import choose_test_window, rule_of


def bookings(n: int = 2400, seed: int = 0) -> pd.DataFrame:
    """Six months of bookings and three days of a seventh (a trailing partial period)."""
    rng = np.random.default_rng(seed)
    days = np.sort(rng.integers(0, 184, n))
    days[-25:] = 182 + rng.integers(0, 3, 25)  # 2024-07-01..03
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")
    nights = rng.integers(1, 10, n)
    channel = rng.choice(["web", "phone", "agent"], n)
    price = np.exp(4.5 + 0.1 * nights + 0.4 * (channel == "agent") + rng.normal(0, 0.8, n))
    cancel = rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 0.25 * nights - 0.8 * (channel == "web"))))
    return pd.DataFrame(
        {
            "booked": when.strftime("%Y-%m-%d"),
            "nights": nights,
            "channel": channel,
            "price": price.round(2),
            "cancelled": np.where(cancel, "yes", "no"),
        }
    )


def init(root: Path, name: str, data: Path, *flags: str):
    return CliRunner().invoke(
        app, ["task", "init", name, "--data", str(data), *flags, "-p", str(root / "params.yaml")]
    )


def test_task_init_shows_the_test_window_and_proposes_floors(project: Path) -> None:
    path = project / "bookings.csv"
    bookings().to_csv(path, index=False)
    result = init(project, "bookings", path, "--label", "cancelled", "--time", "booked")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "test window 2024-06..2024-07 (2 partition(s)" in output
    assert "partial period(s) 2024-07 merged" in output
    params = Project(project / "params.yaml").load("bookings")
    assert params.data.min_test_rows == 240 and params.data.min_test_class_rows == 20
    floor = params.promotion.floors["roc_auc"]
    assert 0.5 <= floor < 0.9 and f"floor {floor} proposed" in output
    assert params.promotion.must_beat == ["prior", "logistic_regression"]
    # what the run will choose: the same window
    frame = bookings()
    labels = (frame["cancelled"] == "yes").astype(float).to_numpy()
    months = frame["booked"].str[:7]
    groups = pd.Series(labels).groupby(months.to_numpy())
    window = choose_test_window(
        sorted(months.unique()), lambda m: groups.get_group(m).to_numpy(), rule_of(params.data)
    )
    assert window.test == ["2024-06", "2024-07"]


def test_a_skewed_positive_target_is_proposed_as_log1p_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "bookings.csv"
    bookings().to_csv(path, index=False)
    made = profile(TaskRequest("prices", path, "price", "booked", kind="regression"))
    assert made.task["data"]["label"]["transform"] == "log1p"
    assert "price is skewed (skewness" in " ".join(made.notes)
    assert "r2" in made.task["promotion"]["floors"]
    even = profile(TaskRequest("stays", path, "nights", "booked", kind="regression"))
    assert "transform" not in even.task["data"]["label"]


def test_a_small_table_is_proposed_a_batch_size_that_leaves_steps_to_learn(tmp_path) -> None:
    """The corpus: 1,024 rows a step left a 3,000-row table 3 steps an epoch (R² -1.16;
    0.968 at 64). task init halves the batch until an epoch has 40 steps; a big table keeps
    the shared default."""
    path = tmp_path / "bookings.csv"
    bookings().to_csv(path, index=False)
    small = profile(TaskRequest("small", path, "cancelled", "booked"))
    size = small.task["train"]["batch_size"]
    assert size == 32 and "train.batch_size 32 proposed" in " ".join(small.notes)
    assert small.task["train"]["num_threads"] == 1
    # and epochs enough for 2,000 steps in all (8 epochs of 56 steps trained 448: underfit)
    assert small.task["train"]["max_epochs"] == 36 and small.task["train"]["patience"] == 9
    assert "(56 steps an epoch: 8 epochs would train 448 steps" in " ".join(small.notes)
    big = path.with_name("big.csv")
    bookings(200_000, seed=1).to_csv(big, index=False)
    large = profile(TaskRequest("large", big, "cancelled", "booked"))
    assert "batch_size" not in large.task["train"]  # 1,024 leaves ~160 steps an epoch
    assert "num_threads" not in large.task["train"]
    assert large.task["train"]["max_epochs"] == 12  # 8 epochs of ~170 steps: under 2,000
    # params.yaml's own settings are the ones compared: 8 epochs of 352 steps are enough
    assert propose_steps(180_000, [], 512, 8, 4) == {}
    # numeric inputs: plain and as piecewise-linear embeddings, the better on validation
    # kept, unless params.yaml already chose an embedding, or there is no numeric input
    assert small.task["model"] == {"numeric_embeddings": {"kind": "auto"}}
    assert "numeric_embeddings.kind auto proposed" in " ".join(small.notes)
    assert propose_model(["nights"], [], "periodic") == {} and propose_model([], []) == {}


def test_task_init_names_classes_too_rare_for_the_test_window_share() -> None:
    """rodent-species: 26 years, species seen a few times each. The window stays within 30%
    of the rows (data.max_test_share); the classes it cannot hold 5 of are named."""
    each = [[0.0] * 100 + [1.0] * (i % 4 == 0) for i in range(26)]  # thin: every 4th year
    years = pd.Series([str(1977 + i) for i, rows in enumerate(each) for _ in rows])
    labels = np.concatenate(each)
    labels[1] = 2.0  # one row of the third class, in the oldest year
    notes: list[str] = []
    label = {"kind": "multiclass", "classes": ["common", "thin", "once"]}
    asked = {"min_test_class_rows": 5}
    settings, window = propose_window(labels, years, label, notes, asked, "year", 0.3)
    assert window is not None and settings["min_test_class_rows"] == 5
    assert window.too_rare == ["thin", "once"] and window.rows <= 0.3 * len(labels)
    assert any("thin, once: too rare to hold 5 test rows each within 30%" in n for n in notes)


def test_the_flags_override_the_proposals(tmp_path: Path) -> None:
    path = tmp_path / "bookings.csv"
    bookings().to_csv(path, index=False)
    asked = TaskRequest(
        "prices", path, "price", "booked", kind="regression", min_test_rows=700, transform="none"
    )
    made = profile(asked)
    assert "transform" not in made.task["data"]["label"]
    assert made.task["data"]["min_test_rows"] == 700
    assert "min_test_class_rows" not in made.task["data"]  # regression: rows only
    assert "test window 2024-05..2024-07 (3 partition(s)" in " ".join(made.notes)
    with pytest.raises(DataError, match="--transform is for regression labels"):
        profile(TaskRequest("c", path, "cancelled", "booked", transform="log1p"))


@pytest.mark.parametrize(
    ("write", "flags", "message"),
    [
        (lambda p: p.write_text(""), [], "is empty: no columns, no rows; --data"),
        (
            lambda p: p.write_text("booked,price,price\n2024-01-01,1,2\n"),
            [],
            r"two or more columns named \['price'\].*--data",
        ),
        (
            lambda p: bookings().assign(booked="someday").to_csv(p, index=False),
            [],
            "'booked' does not parse as dates .e.g. 'someday'.: --time",
        ),
        (
            lambda p: bookings().assign(cancelled="no").to_csv(p, index=False),
            ["--positive", "no"],
            "holds one class .positive. over every row: --label .*--positive",
        ),
        (
            lambda p: bookings().to_csv(p, index=False),
            ["--label", "nights", "--threshold", "0"],
            "holds one class .positive. over every row: --threshold",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_flag_and_nothing_is_written(
    project: Path, write, flags, message
) -> None:
    path = project / "bad.csv"
    write(path)
    options = flags if "--label" in flags else ["--label", "cancelled", *flags]
    result = init(project, "bad", path, *options, "--time", "booked")
    assert result.exit_code != 0
    assert re.search(message, " ".join(result.output.split())), result.output
    assert not (project / "tasks" / "bad.yaml").exists()


def test_the_run_names_the_same_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("booked,price\n")
    with pytest.raises(DataError, match="holds no rows .only a header.; --data"):
        read_table(empty)
    data = DataParams.model_validate(
        {"time": {"column": "booked"}, "label": {"column": "cancelled", "positive": "yes"}}
    )
    with pytest.raises(DataError, match=r"no row has a time that parses .*\(--time"):
        split_by_period(data, bookings().assign(booked="someday"))
    never = {"2024-01": np.zeros(300), "2024-02": np.zeros(300)}
    with pytest.raises(DataError, match="no positive row in any partition: one class"):
        choose_test_window(list(never), never.__getitem__, rule_of(data))
