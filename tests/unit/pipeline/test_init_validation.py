"""A task `maas task init` wrote passes its own validation on the table it was made from: a
boolean input (True/False) is a `bool` column end to end (suite, request, categories), and
unlabeled rows, which the run drops, never block a partition (corpus: restaurant-scores,
bird-strikes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from maas.cli import app
from maas.cli.common import Project
from maas.config.sections import RequestParams
from maas.pipeline.data.partitions import Partition, period_bounds
from maas.pipeline.data.sources import split_by_period
from maas.pipeline.training.request_spec import field_type, json_value
from maas.pipeline.validation.run import raise_for_blocking, validate_partitions
from maas.serving.preprocessing import as_category_strings
from maas.serving.request import FieldSpec, RequestSpec, record_model
from tests.unit.pipeline.validation_cases import failed

NOT_NULL = "expect_column_values_to_not_be_null"


def inspections(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Yearly inspections with a boolean input; the last, small year has a third of its
    labels missing (the file as a whole under 3%)."""
    rng = np.random.default_rng(seed)
    year = np.sort(rng.integers(2000, 2010, n))
    year[-18:] = 2010
    weekend = rng.random(n) < 0.3
    visits = rng.integers(1, 20, n)
    score = (90 + 3 * weekend - 0.2 * visits + rng.normal(0, 2, n)).round(1)
    frame = pd.DataFrame({"Year": year, "Weekend": weekend, "visits": visits, "score": score})
    frame.loc[frame.index[-6:], "score"] = np.nan
    return frame


def init_and_validate(project: Path, frame: pd.DataFrame):
    """`maas task init` on the frame, then the validation stage on its yearly partitions (as
    ingest writes them: parquet files)."""
    path = project / "inspections.parquet"
    frame.to_parquet(path, index=False)
    result = CliRunner().invoke(
        app,
        ["task", "init", "insp", "--data", str(path), "--label", "score", "--time", "Year"]
        + ["--kind", "regression", "--partition", "year", "-p", str(project / "params.yaml")],
    )
    assert result.exit_code == 0, result.output
    params = Project(project / "params.yaml").load("insp")
    batches = []
    for name, rows in split_by_period(params.data, frame).items():
        file = project / f"{name}.parquet"
        rows.to_parquet(file, index=False)
        bounds = period_bounds(name, params.data.partitioning)  # an integer year: `number`
        batches.append((Partition(name, file, *bounds), pd.read_parquet(file)))
    report = validate_partitions(batches, params.validation, params.data, None)
    return result.output, params, report


def test_a_boolean_input_is_a_bool_column_that_passes_validation(project: Path) -> None:
    output, params, report = init_and_validate(project, inspections())
    assert params.validation.columns["Weekend"] == "bool"
    assert "Weekend" in params.features.categorical
    assert "Weekend" not in params.validation.domains  # the type pins its two values
    assert not {f for f in failed(report) if f[1] == "Weekend"}, failed(report)
    raise_for_blocking(report)
    assert field_type("Weekend", params.request, pd.DataFrame()) == "bool"  # the request field
    assert "closed domains for ['Weekend']" not in " ".join(output.split())


def test_a_json_boolean_is_the_category_training_saw(project: Path) -> None:
    training = as_category_strings(inspections()["Weekend"].to_numpy())
    assert set(training) == {"True", "False"}
    rows = pd.DataFrame({"Weekend": [True, False]})
    undeclared = RequestParams.model_construct(types={})
    assert field_type("Weekend", undeclared, rows) == "bool"
    assert json_value(np.True_, "bool") is True
    record = record_model(RequestSpec("records", (FieldSpec("Weekend", "bool"),)))
    bodies = ['{"Weekend": true}', '{"Weekend": false}']
    served = [record.model_validate_json(body).model_dump()["Weekend"] for body in bodies]
    assert list(as_category_strings(served)) == ["True", "False"]
    assert list(as_category_strings(["True", None])) == ["True", ""]  # text and missing alike
    for wrong in ('"true"', "1", '"yes"'):
        with pytest.raises(ValidationError, match="Weekend"):
            record.model_validate_json(f'{{"Weekend": {wrong}}}')


def test_unlabeled_rows_the_run_drops_do_not_block_a_partition(project: Path) -> None:
    output, params, report = init_and_validate(project, inspections())
    assert params.data.label.unlabeled == "drop"
    label_rules = [r for r in params.validation.not_null if r.column == "score"]
    assert [(r.mostly, r.severity) for r in label_rules] == [(1.0, "warn")]
    assert (NOT_NULL, "score", "warn") in failed(report)  # reported: 6 of 2010's 18 rows
    assert (NOT_NULL, "score", "block") not in failed(report)
    raise_for_blocking(report)
    assert "never block" in " ".join(output.split())
    text = (project / "tasks" / "insp.yaml").read_text()
    assert "never blocks a run" in " ".join(text.split())
