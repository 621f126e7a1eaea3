"""The training run's Prefect artifacts: the validation report (also when validation blocked
the run) and the summary of metrics against baselines and the champion."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from maas.pipeline import report
from maas.pipeline.evaluation.result import Evaluation
from maas.pipeline.register import Registration
from maas.pipeline.stages import TrainSummary, ValidateResult


def publish_blocked_validation(task: Any, task_run: Any, state: Any) -> None:
    """A failed validate task's error as the run's validation report (what blocked it)."""
    error = state.result(raise_on_failure=False)
    create_markdown_artifact(
        f"**Validation blocked the run**\n\n```\n{error}\n```",
        key="validation-report",
        description="blocking failures",
    )


def publish_run(
    validated: ValidateResult, trained: TrainSummary, metrics: Evaluation, registered: Registration
) -> None:
    """The validation report and the run summary of a run that got to the registry."""
    create_markdown_artifact(validated.markdown, key="validation-report", description="validation")
    create_markdown_artifact(
        report.summary_markdown(validated, trained, metrics, registered),
        key="training-summary",
        description="metrics vs baselines vs champion",
    )
