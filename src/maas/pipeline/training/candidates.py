"""The numeric embedding a table takes, chosen on its own validation slice.

`model.numeric_embeddings.kind: auto` trains the network twice on the same rows, the same
seed and the same epochs budget: with each numeric input as one standardized number (`none`)
and as a piecewise-linear embedding of its quantile bins (`piecewise_linear`, Gorishniy et al.
2022), and compares them on the gate's metric over the validation slice (the latest part of
the training window; never the test window). Neither wins everywhere: the embeddings close
much of a small table's gap to gradient boosting, plain numbers do better on others (the
digits, the rare-positive flights).

The better validation score is kept (the first of equals: `none`). Each later candidate's
lead over the one kept before it is recorded with a paired-bootstrap interval over the
validation rows (maas.pipeline.evaluation.difference, level 1 - 2 INTERVAL_ALPHA), so the run
says how sure the choice was. Requiring a clear lead instead (the one-standard-error rule,
ESL §7.10) was measured against the corpus's test windows and chose worse: small validation
slices hid real leads more often than they invented one (benchmarks/embedding_choice.py,
reports/embedding-choice.md). The price is a second training; the version records what was
kept (tag `numeric_embedding`) and the run each candidate's score and lead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol, TypeVar

import numpy as np

from maas.config import ModelParams
from maas.config.kinds import METRICS, better
from maas.pipeline.evaluation.difference import quality_drop

AUTO_EMBEDDINGS = ("none", "piecewise_linear")  # simplest first: it keeps a tie
INTERVAL_ALPHA = 0.05  # the recorded lead's interval: 90%, each bound one-sided at 5%


def candidate_models(model: ModelParams) -> list[ModelParams]:
    """The models `model` stands for: one per embedding of AUTO_EMBEDDINGS where its
    numeric_embeddings.kind is `auto`, else itself."""
    embeddings = model.numeric_embeddings
    if embeddings.kind != "auto":
        return [model]
    return [
        model.model_copy(update={"numeric_embeddings": embeddings.model_copy(update={"kind": k})})
        for k in AUTO_EMBEDDINGS
    ]


@dataclass(frozen=True)
class Candidate:
    """One trained candidate, as the run and train_summary.json record it."""

    numeric_embedding: str
    best_epoch: int
    validation_score: float  # the gate's metric at the best epoch (nan: undefined there)
    seconds: float
    # its lead over the candidate kept before it (the metric's units, positive: better) and
    # the bootstrap interval's bounds; nan for the first
    lead: float = math.nan
    lead_low: float = math.nan
    lead_high: float = math.nan

    def to_dict(self) -> dict[str, object]:
        """As JSON takes it: a number that is not finite (no lead) is null."""
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self).items()
        }


class Recorded(Protocol):
    @property
    def candidate(self) -> Candidate: ...

    @property
    def predictions(self) -> np.ndarray: ...  # the validation rows' served outputs


Result = TypeVar("Result", bound=Recorded)


def with_lead(
    challenger: Recorded,
    incumbent: Recorded,
    labels: np.ndarray,
    metric: str,
    kind: str,
    alpha: float = INTERVAL_ALPHA,
) -> Candidate:
    """`challenger`'s record with its paired-bootstrap lead over `incumbent` on the validation
    rows (`labels`); no interval (nan) where a resample or a score is undefined."""
    record = challenger.candidate
    scores = (record.validation_score, incumbent.candidate.validation_score)
    if not (all(math.isfinite(score) for score in scores) and len(labels)):
        return record  # no lead over (or of) a network without a score
    try:
        behind = quality_drop(  # how much worse the challenger is: its lead, negated
            METRICS[metric],
            kind,
            (labels, incumbent.predictions),
            (labels, challenger.predictions),
            paired=True,
            alpha=alpha,
        )
    except ValueError:  # undefined on these rows (one class)
        return record
    return replace(record, lead=-behind.drop, lead_low=-behind.high, lead_high=-behind.low)


def chosen(candidates: Sequence[Candidate], metric: str) -> int:
    """The candidate kept: the one with the best validation score on `metric` (the first of
    equals; a score that is not a number never wins)."""
    best = 0
    for index, candidate in enumerate(candidates[1:], start=1):
        score, kept = candidate.validation_score, candidates[best].validation_score
        if not math.isfinite(score):
            continue
        if not math.isfinite(kept) or better(METRICS[metric], score, kept) > 0:
            best = index
    return best


def choose(
    models: Sequence[ModelParams],
    train_one: Callable[[ModelParams], Result],
    labels: np.ndarray,
    metric: str,
    kind: str,
    say: Callable[[str], None],
) -> tuple[Result, list[Candidate]]:
    """Train each of `models` with `train_one` and return the result kept (`chosen`) with
    every candidate's record, each later one's lead over the one kept before it measured on
    the validation rows' `labels` (a single model: trained, nothing said)."""
    results: list[Result] = []
    candidates: list[Candidate] = []
    best = 0
    for number, model in enumerate(models, start=1):
        if len(models) > 1:
            say(
                f"train: candidate {number} of {len(models)}: "
                f"model.numeric_embeddings.kind {model.numeric_embeddings.kind}"
            )
        results.append(train_one(model))
        record = results[-1].candidate
        if len(results) > 1:
            record = with_lead(results[-1], results[best], labels, metric, kind)
        candidates.append(record)
        best = chosen(candidates, metric)
    if len(models) > 1:
        say(
            f"train: kept numeric_embeddings {candidates[best].numeric_embedding} ({metric}: "
            + "; ".join(described(c) for c in candidates)
            + ")"
        )
    return results[best], candidates


def described(candidate: Candidate) -> str:
    text = f"{candidate.numeric_embedding} {candidate.validation_score:.4f}"
    if math.isfinite(candidate.lead):
        text += (
            f", lead {candidate.lead:+.4f} [{candidate.lead_low:+.4f}, {candidate.lead_high:+.4f}]"
        )
    return text


def candidate_metrics(candidates: Sequence[Candidate], metric: str) -> dict[str, float]:
    """The run's metrics `<embedding>.best_val_<metric>` where several candidates trained."""
    if len(candidates) < 2:
        return {}
    return {f"{c.numeric_embedding}.best_val_{metric}": c.validation_score for c in candidates}
