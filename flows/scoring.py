"""Scoring flows: `score`, one `maas score` job, and `score-partitions` (`maas schedule`'s
`score-<task>`, scoring.schedule): each new partition scored. Wiring only: `maas.scoring`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Interval

from maas.config import Params
from maas.config.scheduled import load_run_params
from maas.scoring.local import score_table
from maas.scoring.partitions import due_partitions

score_job = task(name="score_table", cache_policy=NO_CACHE)(score_table)


@flow(name="score", log_prints=True)
def score(
    input_uri: str,
    output: str,
    version: str = "champion",
    columns: list[str] | None = None,
    backend: str = "local",
    master: str | None = None,
    overwrite: bool = False,
    log_predictions: bool = False,
    params_file: str = "params.yaml",
    overrides: list[str] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Score every row of `input_uri` with `version` into `output` (maas.scoring.local)."""
    params = load_run_params(params_file, overrides, task)
    return score_job(
        params=params,
        version=version,
        input_uri=input_uri,
        output=Path(output),
        columns=tuple(columns or ()),
        overwrite=overwrite,
        backend=backend,
        master=master,
        log_predictions=log_predictions,
    ).to_dict()


@flow(name="score-partitions", log_prints=True)
def score_partitions(
    params_file: str = "params.yaml", overrides: list[str] | None = None, task: str | None = None
) -> list[dict[str, Any]]:
    """Score each partition that has no up-to-date output (scoring.* in params)."""
    params = load_run_params(params_file, overrides, task)  # a scheduled run: the owner's
    settings = params.scoring
    jobs = []
    for due in due_partitions(params):
        summary = score_job(
            params=params,
            version=settings.version,
            input_uri=str(due.input),
            output=due.output,
            overwrite=due.rescore,
            backend=settings.backend,
            master=settings.master,
            log_predictions=settings.log_predictions,
        )
        jobs.append({"partition": due.name, **summary.to_dict()})
    return jobs


def scoring_deployment_name(task: str) -> str:
    return f"score-{task}"


def scoring_deployments(params: Params, parameters: dict[str, Any], tags: list[str]) -> list[Any]:
    """`maas schedule`'s `score-<task>`, every scoring.interval_s (none with it off); a look
    due while one still scores is cancelled: the next interval looks again."""
    if not params.scoring.schedule:
        return []
    limit = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    return [
        score_partitions.to_deployment(
            scoring_deployment_name(params.task),
            schedules=[Interval(params.scoring.interval_s)],
            parameters=parameters,
            description="score each new partition with scoring.version (maas score)",
            tags=tags,
            concurrency_limit=limit,
        )
    ]
