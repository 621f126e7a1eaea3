"""The monitoring section: the prediction log the services write, and what the monitoring flow
(`maas monitor`, docs/monitoring.md) compares, when it calls a period a breach, and what it
does then."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from maas.config.base import Strict


class MonitoringParams(Strict):
    # the prediction log: one folder per model under log_dir, a file per serving process
    log: bool = True  # deployed services log every prediction (request, response, version)
    log_dir: Path = Path(".maas/predictions")
    log_max_bytes: int = Field(64 << 20, ge=4096)  # a process's file rolls over at this size
    log_backups: int = Field(8, ge=0)  # rolled-over files kept per process (retention)
    # files last written longer ago are deleted by the services (null: kept until log_backups)
    retention_days: float | None = Field(90, gt=0)
    # record fields logged redacted: drop (never logged) | hash (sha256: joins, but guessable)
    redact: dict[str, Literal["drop", "hash"]] = {}
    # deploy.target kubernetes: the pods log into a ReadWriteMany claim of this storage class
    # (one the cluster has, e.g. nfs-client, efs-sc, azurefile; null: the pods log nothing)
    kubernetes_storage_class: str | None = None
    kubernetes_log_size: str = Field("20Gi", pattern=r"^[1-9][0-9]*(Mi|Gi|Ti)$")  # fixed size
    # the monitoring flow
    cron: str = "30 3 * * *"  # `maas schedule`: the monitoring flow, daily at 03:30
    state_dir: Path = Path(".maas/monitoring")  # each task's judged periods, alerts, retrains
    reference_rows: int = Field(20_000, ge=100)  # rows sampled from the champion's training window
    min_rows: int = Field(200, ge=1)  # a period with fewer rows is reported, not judged
    seed: int = 0  # the reference sample's
    # policy: a period breaches when either threshold is crossed
    drift_share: float = Field(0.5, gt=0, le=1)  # share of input columns that drifted (Evidently)
    metric_drop: float = Field(0.03, ge=0)  # realized gate metric below the registered one by more
    # POST a Slack-compatible, HMAC-signed JSON alert here: a URL is a secret, so by reference
    # (`env:NAME` or `file:PATH`, mode 0600; a literal URL works but lands in the repo)
    alert_webhook: str | None = None
    alert_secret_file: Path = Path(".maas/alert.secret")  # the HMAC key (or $MAAS_ALERT_SECRET)
    retrain: bool = False  # on a breach, run the training flow now (the gate still decides)
    cooldown_h: float = Field(24, ge=0)  # no retraining sooner than this after the last one


class PartitionDriftParams(Strict):
    """`validation.drift`: each partition against the one before it, by Evidently, before
    anything trains on it. A unit or encoding change moves a column much farther between two
    months than a season does (measured per column in docs/pipeline.md), so each column gets
    its own threshold: a score above it fails the partition with `severity`."""

    # column: the score from which the column drifted (none: the check is off)
    thresholds: dict[str, float] = Field(default_factory=dict)
    num_method: str = "wasserstein"  # Evidently's test for int/float columns (normed distance)
    cat_method: str = "jensenshannon"  # for str columns
    sample_rows: int = Field(20_000, ge=100)  # rows of each side (sampled, seeded)
    seed: int = 0
    severity: Literal["block", "warn"] = "block"
