"""A sample of the corpus (benchmarks/corpus.py, `make corpus`): real public tables of two
kinds go from file to a served prediction with `maas task init` flags only, on small rows and
without building images (`maas serve`, BentoML in a process). A change that breaks a kind of
table no example task exercises fails here. The runs' own terminal output is clean too: only
maas's lines, no library warnings or Prefect/MLflow bookkeeping (the log file holds those)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from benchmarks import embedding_choice
from benchmarks.corpus import run_corpus
from benchmarks.corpus_datasets import BY_NAME
from benchmarks.corpus_report import report_markdown

from maas.pipeline.stages import TRAIN_SUMMARY_FILE
from maas.serving.inference import MODEL_CONFIG_FILE
from tests.e2e.helpers import session_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = ("flight-origin", "airport-weather")  # multiclass; regression with missing values
MAX_ROWS = 1000
# The sample checks the path's generality (any table, any kind, file to served answer); the
# model's quality against the baselines is the full corpus's report (reports/corpus.md): here
# the gate only asks the model to beat the prior.
GATE = ("promotion.floors={}", "promotion.must_beat=[prior]")
MAAS_LINE = re.compile(r"^\S+ (DEBUG|INFO|WARNING) maas(\.\S+)?: ")


def terminal_lines(log: Path) -> list[str]:
    """The stderr a person would have read during the step (benchmarks/corpus.py keeps it)."""
    stderr = log.read_text().split("--- stderr ---", 1)[1]
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_sample_of_the_corpus_goes_from_file_to_a_served_prediction(
    prefect_api, tmp_path: Path
) -> None:
    chosen = [BY_NAME[name] for name in SAMPLE]
    outcomes = run_corpus(
        chosen,
        workdir=tmp_path,
        max_rows=MAX_ROWS,
        package=False,
        env=session_env(),
        run_sets=GATE,
    )
    report = report_markdown(outcomes, max_rows=MAX_ROWS, package=False, run_sets=GATE)
    print(report)
    for outcome in outcomes:
        assert outcome.ok, report
        assert outcome.served and outcome.score is not None and outcome.baselines, report
        for step in ("init", "run"):
            noise = [
                line
                for line in terminal_lines(tmp_path / outcome.name / f"{step}.log")
                if not MAAS_LINE.match(line)
            ]
            assert not noise, f"{outcome.name} {step}: {noise[:5]}"
    # task init proposed `auto` numeric embeddings: each run trained both and said its choice
    for outcome in outcomes:
        summary = json.loads(next((tmp_path / outcome.name).rglob(TRAIN_SUMMARY_FILE)).read_text())
        embeddings = [c["numeric_embedding"] for c in summary["candidates"]]
        assert embeddings == ["none", "piecewise_linear"], outcome.name
        assert "train: kept numeric_embeddings" in (tmp_path / outcome.name / "run.log").read_text()
    # benchmarks/embedding_choice.py retrains both candidates of a run and makes its choice
    rows = embedding_choice.main(["--workdir", str(tmp_path), "--datasets", "airport-weather"])
    config = next((tmp_path / "airport-weather").rglob(MODEL_CONFIG_FILE))
    assert rows[0]["picks"]["validation"] == json.loads(config.read_text())["numeric_embedding"]
    assert set(rows[0]["test"]) == {"none", "piecewise_linear"}
