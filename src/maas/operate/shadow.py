"""The shadow step of a rollout (issue 30 item 2): the candidate replays the champion's recent
served requests from the prediction log — no client sees its answers — and is compared with
what the champion answered: how much they disagree, what the candidate's quality would have
been on the requests whose labels have arrived next to the champion's actual quality on the
same rows, and its scoring time per record.

The candidate is scored by the batch-scoring path (`maas.scoring.local.score_table`): its
signed verdict verified before anything of it is downloaded, its artifacts and recorded
serving code digest-checked, the code run in a child process with an allowlisted environment,
each record validated and answered exactly as its service would (a record it refuses is one
its service would answer with a 400). The job is recorded as a scoring job's lineage run.

A record logged with a redacted field (`monitoring.redact`) is replayed with what the log
holds (nothing, or a hash): the report names such fields, as their answers differ for that
reason and not the model's.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from maas.config import Params
from maas.config.kinds import gate_metric
from maas.errors import ScoringError
from maas.monitor import evidence
from maas.monitor.predictions import LogColumns, read_predictions
from maas.operate.rollout_quality import (
    LABEL,
    labels_for,
    outputs_of,
    quality_check,
    utc,
    with_labels,
)
from maas.operate.rollout_types import Check
from maas.pipeline.evaluation.difference import RESAMPLES, Difference, quality_drop

if TYPE_CHECKING:
    from mlflow import MlflowClient

ROW = "_replay_row"  # each replayed record's number, passed through the scoring job
CANDIDATE = "candidate."  # the prefix of the candidate's outputs beside the champion's
WARM_ROWS = 16  # the first unit: starts the worker (its imports, the ONNX session), untimed
UNIT_ROWS = 1000  # records per unit after it
# the shadow step's defaults (docs/monitoring.md says why)
MAX_REQUESTS = 2000  # the newest requests replayed
MIN_REQUESTS = 100  # fewer replayed requests: every check undecided
MIN_LABELED = 200  # fewer labeled rows: the quality check undecided
MAX_QUALITY_DROP = 0.02  # of the gate metric, at the interval's lower bound
MAX_DISAGREEMENT = 0.1  # mean |Δp|, |Δ| / std (regression), or the share of class flips
MIN_RANK_CORRELATION = 0.5  # Spearman's, binary and regression
MAX_REFUSED_SHARE = 0.01  # of the champion's records the candidate would answer with a 400
ALPHA = 0.05


@dataclass(frozen=True)
class Disagreement:
    """How differently the two versions answered the same records. Binary: mean |Δ| of the
    probability; regression: mean |Δ| of the value over the champion's standard deviation
    (scale-free: one threshold fits every task); multiclass: the share of class flips.
    `rank_correlation`: Spearman's, of the probability or value (None for multiclass, and
    where the champion answered every record alike: nothing to rank, mean |Δ| judges)."""

    records: int
    mean_abs_delta: float
    rank_correlation: float | None = None


@dataclass(frozen=True)
class ShadowReport:
    model: str
    champion: str
    candidate: str
    since: str | None
    requests: int  # replayed (distinct request ids)
    records: int  # replayed records
    refused: int  # records the candidate's service would answer with a 400
    disagreement: Disagreement | None  # None when no record was scored
    latency_ms: float | None  # the candidate's scoring time per record (None: too few)
    labeled: int  # replayed records whose label has arrived
    quality: Difference | None  # the gate metric of both on those rows
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def disagreement(kind: str, champion: np.ndarray, candidate: np.ndarray) -> Disagreement:
    """Of two versions' outputs for the same records (binary, regression: (n,); multiclass:
    (n, classes) probabilities)."""
    from scipy.stats import spearmanr

    if kind == "multiclass":
        flips = float(np.mean(champion.argmax(axis=1) != candidate.argmax(axis=1)))
        return Disagreement(len(champion), flips)
    delta = float(np.mean(np.abs(candidate - champion))) if len(champion) else math.nan
    if kind == "regression":
        spread = float(np.std(champion))
        delta = delta / spread if spread > 0 else (0.0 if delta == 0 else math.inf)
    rho: float | None
    if delta == 0:
        rho = 1.0  # the same answers (also where they are constant: no ranks to compare)
    elif len(champion) > 1 and np.ptp(champion) > 0 and np.ptp(candidate) > 0:
        rho = float(spearmanr(champion, candidate).statistic)
    elif len(champion) > 1 and np.ptp(champion) == 0:
        rho = None  # the champion answered one value (the same record replayed): no ranks
    else:
        rho = 0.0  # the candidate answers a constant where the champion ranks: it ranks nothing
    return Disagreement(len(champion), delta, rho)


def replayed_requests(
    params: Params, champion_version: str, since: dt.datetime | None, max_requests: int
) -> pd.DataFrame:
    """The champion's newest served records (at most `max_requests` requests, served at or
    after `since`), in the order served, with its answers."""
    logged = read_predictions(
        params.monitoring.log_dir / params.registry.model_name,
        params.serving.body_key,
        LogColumns.of(params),
    ).frame
    if logged.empty:
        return logged
    rows = logged[logged["model_version"] == str(champion_version)]
    if since is not None:
        rows = rows[rows["logged_at"] >= utc(since)]
    newest = rows.drop_duplicates("request_id", keep="last")["request_id"].tail(max_requests)
    return rows[rows["request_id"].isin(set(newest))].reset_index(drop=True)


def shadow_report(
    params: Params,
    client: MlflowClient,
    champion_version: str,
    candidate_version: str,
    *,
    since: dt.datetime | None = None,
    max_requests: int = MAX_REQUESTS,
    min_requests: int = 1,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> ShadowReport:
    """The candidate replays the champion's recent requests (see the module's docstring);
    with fewer than `min_requests` of them, nothing is scored (the report counts them).
    UntrustedVersionError before anything of an unsigned or altered candidate is run."""
    from maas.tracking.keyring import load_key
    from maas.tracking.registry import resolve_version
    from maas.tracking.verdict import require_verdict

    model = params.registry.model_name
    found = resolve_version(client, model, str(candidate_version))  # a number or an alias
    require_verdict(load_key(params.promotion.verdict_key_file), found)  # fail before reading
    candidate = str(found.version)
    replay = replayed_requests(params, champion_version, since, max_requests)
    notes = _redaction_notes(params, replay)
    requests = int(replay["request_id"].nunique()) if len(replay) else 0
    report = ShadowReport(
        model,
        str(champion_version),
        candidate,
        since.isoformat() if since is not None else None,
        requests,
        len(replay),
        refused=0,
        disagreement=None,
        latency_ms=None,
        labeled=0,
        quality=None,
        notes=tuple(notes),
    )
    if replay.empty or requests < min_requests:
        return report
    try:
        scored, latency_ms = _score(params, candidate, replay)
    except ScoringError as error:  # e.g. it requires a field the champion's requests lack
        notes.append(f"the candidate could not score the replay: {error}")
        scored, latency_ms = pd.DataFrame(), None
    both = replay.join(scored, how="inner")
    kind = params.data.label.kind
    agreement = None
    if len(both):
        agreement = disagreement(
            kind, outputs_of(both, params), outputs_of(both, params, CANDIDATE)
        )
    labeled = with_labels(both, labels_for(both, params), params)
    quality = None
    if len(labeled):
        try:
            quality = quality_drop(
                gate_metric(kind, params.promotion.metric),
                kind,
                (labeled[LABEL].to_numpy(), outputs_of(labeled, params)),
                (labeled[LABEL].to_numpy(), outputs_of(labeled, params, CANDIDATE)),
                paired=True,
                alpha=alpha,
                resamples=resamples,
                seed=seed,
            )
        except ValueError as error:  # one class only among the labeled rows, too few rows
            notes.append(f"quality not computed on {len(labeled)} labeled rows: {error}")
    return replace(
        report,
        refused=len(replay) - len(scored),
        disagreement=agreement,
        latency_ms=latency_ms,
        labeled=len(labeled),
        quality=quality,
        notes=tuple(notes),
    )


def shadow_checks(
    params: Params,
    client: MlflowClient,
    champion_version: str,
    candidate_version: str,
    *,
    since: dt.datetime | None = None,
    max_requests: int = MAX_REQUESTS,
    min_requests: int = MIN_REQUESTS,
    min_labeled: int = MIN_LABELED,
    alpha: float = ALPHA,
    max_quality_drop: float = MAX_QUALITY_DROP,
    max_disagreement: float = MAX_DISAGREEMENT,
    min_rank_correlation: float = MIN_RANK_CORRELATION,
    max_refused_share: float = MAX_REFUSED_SHARE,
) -> list[Check]:
    """The shadow step's checks (`checks_of` on the replay's report). A replay is a scoring
    job (seconds: a child process, a lineage run): below `min_requests` replayed requests
    nothing is scored and every check waits."""
    report = shadow_report(
        params,
        client,
        champion_version,
        candidate_version,
        since=since,
        max_requests=max_requests,
        min_requests=min_requests,
        alpha=alpha,
    )
    return checks_of(
        report,
        min_requests=min_requests,
        min_labeled=min_labeled,
        max_quality_drop=max_quality_drop,
        max_disagreement=max_disagreement,
        min_rank_correlation=min_rank_correlation,
        max_refused_share=max_refused_share,
    )


def checks_of(
    report: ShadowReport,
    *,
    min_requests: int = MIN_REQUESTS,
    min_labeled: int = MIN_LABELED,
    max_quality_drop: float = MAX_QUALITY_DROP,
    max_disagreement: float = MAX_DISAGREEMENT,
    min_rank_correlation: float = MIN_RANK_CORRELATION,
    max_refused_share: float = MAX_REFUSED_SHARE,
) -> list[Check]:
    """`shadow_replay` (records the candidate refuses), `shadow_disagreement` and
    `shadow_quality`: each undecided below `min_requests` replayed requests; the quality also
    below `min_labeled` labeled rows."""
    names = ("shadow_replay", "shadow_disagreement", "shadow_quality")
    if report.requests < min_requests:
        reason = f"{report.requests} replayed requests < {min_requests}: waiting for traffic"
        return [Check(name, None, reason, {"requests": float(report.requests)}) for name in names]
    share = report.refused / report.records
    replay_numbers = {
        "requests": float(report.requests),
        "records": float(report.records),
        "refused": float(report.refused),
        "refused_share": share,
    }
    if report.latency_ms is not None:
        replay_numbers["latency_ms_per_record"] = report.latency_ms
    latency = f", {report.latency_ms:.3f} ms/record" if report.latency_ms is not None else ""
    shown = f"{report.refused} of {report.records} records refused ({share:.1%}){latency}"
    allowed = f"{shown}, {max_refused_share:.1%} allowed"
    return [
        Check(names[0], share <= max_refused_share, allowed, replay_numbers),
        _disagreement_check(names[1], report.disagreement, max_disagreement, min_rank_correlation),
        quality_check(
            names[2],
            report.quality,
            report.labeled,
            min_samples=min_labeled,
            max_drop=max_quality_drop,
        ),
    ]


def _disagreement_check(
    name: str, found: Disagreement | None, max_delta: float, min_rho: float
) -> Check:
    if found is None:
        return Check(name, False, "the candidate answered none of the replayed records")
    numbers = {"records": float(found.records), "mean_abs_delta": found.mean_abs_delta}
    shown = f"mean |Δ| {found.mean_abs_delta:.4f} (max {max_delta})"
    if found.rank_correlation is not None:
        numbers["rank_correlation"] = found.rank_correlation
        shown += f", Spearman {found.rank_correlation:.3f} (min {min_rho})"
    passed = found.mean_abs_delta <= max_delta and (
        found.rank_correlation is None or found.rank_correlation >= min_rho
    )
    return Check(name, passed, f"{shown} on {found.records} records", numbers)


def _score(params: Params, version: str, replay: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """The candidate's outputs for the replayed records (indexed like `replay`, prefixed
    CANDIDATE; the records it refuses absent) and its scoring time per record in ms (None
    when only the warm-up unit ran)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from maas.scoring.local import score_table

    fields = [c for c in replay.columns if c in LogColumns.of(params).fields]
    records = replay[fields].copy()
    records[ROW] = np.arange(len(replay))
    table = pa.Table.from_pandas(_uniform(records), preserve_index=False)
    finished: list[float] = []
    with tempfile.TemporaryDirectory(prefix="maas-shadow-") as tmp:
        source, output = Path(tmp) / "replay.parquet", Path(tmp) / "scored.parquet"
        with pq.ParquetWriter(source, table.schema) as writer:
            writer.write_table(table.slice(0, WARM_ROWS), row_group_size=WARM_ROWS)
            if len(table) > WARM_ROWS:
                writer.write_table(table.slice(WARM_ROWS), row_group_size=UNIT_ROWS)
        score_table(
            params,
            version=version,
            input_uri=str(source),
            output=output,
            columns=(ROW,),
            workers=1,  # one after the other: each unit's time is its own
            progress=lambda done, total: finished.append(time.perf_counter()),
        )
        scored = pq.read_table(output).flatten().to_pandas()
    timed = len(replay) - WARM_ROWS
    latency = (finished[-1] - finished[0]) * 1e3 / timed if len(finished) > 1 else None
    outputs = evidence.output_columns(params)
    frame = scored.set_index(ROW)[outputs].add_prefix(CANDIDATE)
    frame.index = frame.index.astype(int)
    return frame, latency


def _uniform(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of one type each, as Parquet needs: a field a client sent as a number in one
    request and a string in another is read as strings (what the service's record model
    coerces or refuses anyway)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object:
            kinds = {type(v) for v in values.dropna()}
            if len(kinds) > 1 and str in kinds:
                out[column] = values.map(lambda v: v if v is None or v != v else str(v))
    return out


def _redaction_notes(params: Params, replay: pd.DataFrame) -> list[str]:
    redacted = sorted(set(params.monitoring.redact) & set(LogColumns.of(params).fields))
    if not redacted or replay.empty:
        return []
    return [
        f"fields logged redacted ({', '.join(redacted)}) are replayed as logged: answers "
        "that depend on them differ for that reason"
    ]
