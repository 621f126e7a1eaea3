"""The training flow's Prefect tasks: each wraps one maas function (retries and caching are
Prefect's), so the flow in training.py only calls them by keyword."""

from __future__ import annotations

from maas.flows.artifacts import publish_blocked_validation
from prefect import task
from prefect.cache_policies import NO_CACHE

from maas.audit import audit_gate_promotion
from maas.pipeline import stages
from maas.pipeline.register import register_model
from maas.tracking.runs import start_pipeline_run

ingest = task(name="ingest", cache_policy=NO_CACHE, retries=1)(stages.ingest_data)
start_run = task(
    name="start_pipeline_run", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3
)(start_pipeline_run)
validate = task(name="validate", cache_policy=NO_CACHE, on_failure=[publish_blocked_validation])(
    stages.validate_data
)
train = task(name="train", cache_policy=NO_CACHE)(stages.train_model)
evaluate = task(name="evaluate", cache_policy=NO_CACHE)(stages.evaluate_model)
register = task(name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)(
    register_model
)
audit_promotion = task(name="audit_gate_promotion", cache_policy=NO_CACHE)(audit_gate_promotion)
