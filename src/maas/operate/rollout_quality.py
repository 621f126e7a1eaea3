"""A rollout step's model-quality analysis on live traffic (issue 30 item 4): the candidate next
to the champion in the same window of the prediction log, each version judged on the requests
it answered. Two checks, each undecided (`passed` None) while either version has fewer than
`min_samples` records in the window, so that noise neither promotes nor rolls back:

- `prediction_shift`: the candidate's prediction distribution against the champion's. Binary
  probabilities and regression values: the two-sample Kolmogorov-Smirnov test; multiclass
  predicted classes: the chi-square test of homogeneity. Both are distribution-free and give
  an effect size beside the p-value (KS D; for classes, the total variation distance of the
  class shares), both from scipy. Evidently runs the same tests (KS below 1,000 rows, a
  Wasserstein distance above) behind a whole HTML report; one column and two numbers for the
  audit event need neither. A new model is expected to answer somewhat differently, and with
  thousands of requests any difference is significant: the check fails only when the shift
  is significant (p < `alpha`) AND larger than `max_prediction_shift`.
- `realized_quality`: once labels arrive, the task's gate metric (`promotion.metric`, else the
  kind's score) of each version on its own labeled rows, and the drop of the candidate
  against the champion with a bootstrap confidence interval (scipy, percentile, `resamples`
  seeded resamples; two independent samples). A bootstrap because the gate metric is often
  not a proportion (ROC AUC, macro F1, R², RMSE): no closed-form test fits all of them. The
  check fails when the interval's lower bound exceeds `max_quality_drop` (the candidate is
  worse by more than the margin at level `alpha`), else passes.

The labels and the paired bootstrap are also what the shadow replay (`maas.operate.shadow`)
uses on the same rows scored by both versions.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from maas.config import Params
from maas.config.kinds import gate_metric
from maas.monitor import evidence
from maas.monitor.predictions import LogColumns, read_predictions
from maas.operate.rollout_types import Check
from maas.pipeline.data.partitions import counted_labels, read_partition
from maas.pipeline.evaluation.difference import RESAMPLES, Difference, quality_drop
from maas.serving.preprocessing import as_category_strings

log = logging.getLogger(__name__)

LABEL = "__label"  # the arrived label of a joined row


def quality_check(
    name: str, difference: Difference | None, rows: int, *, min_samples: int, max_drop: float
) -> Check:
    """Undecided below `min_samples` labeled rows (or with no interval: resamples of one
    class), failed when the drop's lower bound exceeds `max_drop`, else passed."""
    if rows < min_samples:
        return Check(name, None, f"{rows} labeled rows < {min_samples}: waiting for labels")
    if difference is None:
        return Check(name, None, f"{rows} labeled rows: the metric is undefined on them yet")
    numbers = difference.numbers()
    shown = (
        f"{difference.metric} {difference.candidate:.4f} vs {difference.champion:.4f}: "
        f"drop {difference.drop:+.4f} [{difference.low:+.4f}, {difference.high:+.4f}]"
    )
    if not np.isfinite([difference.low, difference.high]).all():
        return Check(name, None, f"{shown}: no interval yet (too few of a class)", numbers)
    if difference.low > max_drop:
        return Check(name, False, f"{shown} > {max_drop} allowed", numbers)
    return Check(name, True, f"{shown}: within {max_drop}", numbers)


def labels_for(rows: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The arrived labeled partitions of the periods `rows` belong to (empty if none)."""
    if rows.empty:
        return pd.DataFrame()
    names = set(evidence.served_periods(rows, params).dropna().unique().tolist())
    found = [p for name, p in evidence.partitions(params).items() if name in names]
    if not found:
        return pd.DataFrame()
    return pd.concat([read_partition(p) for p in found], ignore_index=True)


def with_labels(rows: pd.DataFrame, labeled: pd.DataFrame, params: Params) -> pd.DataFrame:
    """`rows` matched to an arrived label by the task's key columns (the rule of
    `maas.monitor.evidence.join_labels`: a record served twice counts once, its newest
    answer), with the label in LABEL; only rows with a label."""
    keys = list(params.validation.unique_key)
    if not keys or rows.empty or labeled.empty or any(k not in rows.columns for k in keys):
        return rows.iloc[0:0].assign(**{LABEL: pd.Series(dtype=float)})
    left = rows.copy()
    right = labeled[keys].copy()
    right[LABEL] = counted_labels(labeled, params.data.label)
    for frame in (left, right):  # 12 and 12.0 and "12" are one key, as categories read
        for key in keys:
            frame[key] = as_category_strings(frame[key].to_numpy())
    left = left.drop_duplicates(subset=keys, keep="last")
    right = right.drop_duplicates(subset=keys, keep="last")
    joined = left.merge(right, on=keys, how="inner")
    return joined[joined[LABEL].notna()].reset_index(drop=True)


def outputs_of(rows: pd.DataFrame, params: Params, prefix: str = "") -> np.ndarray:
    """The model outputs metrics are computed from (binary, regression: (n,); multiclass:
    (n, classes)), from the logged columns (with `prefix`)."""
    columns = [prefix + name for name in evidence.output_columns(params)]
    values = rows[columns].to_numpy(np.float64)
    return values if params.data.label.kind == "multiclass" else values[:, 0]


def prediction_shift(
    params: Params,
    champion: pd.DataFrame,
    candidate: pd.DataFrame,
    *,
    min_samples: int,
    alpha: float,
    max_shift: float,
) -> Check:
    """The candidate's prediction distribution against the champion's (see the module's
    docstring for the tests)."""
    from scipy.stats import chi2_contingency, ks_2samp

    name, column = "prediction_shift", evidence.prediction_column(params)
    counts = {"champion_rows": float(len(champion)), "candidate_rows": float(len(candidate))}
    if min(len(champion), len(candidate)) < min_samples:
        reason = f"{len(candidate)} candidate / {len(champion)} champion records < {min_samples}"
        return Check(name, None, reason, counts)
    if params.data.label.kind == "multiclass":
        first = champion[column].astype(str).value_counts()
        second = candidate[column].astype(str).value_counts()
        table = pd.concat([first, second], axis=1).fillna(0).to_numpy()
        table = table[table.sum(axis=1) > 0]
        shares = table / table.sum(axis=0, keepdims=True)
        size = float(0.5 * np.abs(shares[:, 0] - shares[:, 1]).sum())
        p_value = float(chi2_contingency(table.T).pvalue) if len(table) > 1 else 1.0
        test = "chi-square, total variation"
    else:
        tested = ks_2samp(
            champion[column].to_numpy(np.float64), candidate[column].to_numpy(np.float64)
        )
        size, p_value, test = float(tested.statistic), float(tested.pvalue), "KS D"
    numbers = {**counts, "shift": size, "p_value": p_value}
    shown = f"{column} shift {size:.3f} ({test}), p={p_value:.3g}"
    if p_value < alpha and size > max_shift:
        return Check(name, False, f"{shown}: beyond {max_shift}", numbers)
    return Check(name, True, f"{shown}: within {max_shift} or not significant", numbers)


def utc(moment: dt.datetime) -> pd.Timestamp:
    """A time as the log reader's (UTC); a naive one is read as UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def live_quality_checks(
    params: Params,
    champion_version: str,
    candidate_version: str,
    since: dt.datetime,
    until: dt.datetime,
    *,
    min_samples: int = 200,
    alpha: float = 0.05,
    max_quality_drop: float = 0.02,
    max_prediction_shift: float = 0.2,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[Check]:
    """Both versions' served records of [since, until) in the task's prediction log: their
    prediction distributions and, on the rows whose labels have arrived, their realized gate
    metric (see the module's docstring)."""
    if since >= until:
        raise ValueError(f"the window [{since}, {until}) is empty: since must precede until")
    model = params.registry.model_name
    logged = read_predictions(
        params.monitoring.log_dir / model, params.serving.body_key, LogColumns.of(params)
    ).frame
    if logged.empty:
        champion = candidate = pd.DataFrame()
    else:
        inside = (logged["logged_at"] >= utc(since)) & (logged["logged_at"] < utc(until))
        window = logged[inside]
        champion = window[window["model_version"] == str(champion_version)]
        candidate = window[window["model_version"] == str(candidate_version)]
    checks = [
        prediction_shift(
            params,
            champion,
            candidate,
            min_samples=min_samples,
            alpha=alpha,
            max_shift=max_prediction_shift,
        )
    ]
    labeled = labels_for(pd.concat([champion, candidate]), params)
    first, second = with_labels(champion, labeled, params), with_labels(candidate, labeled, params)
    rows = min(len(first), len(second))
    difference = None
    if rows >= min_samples:
        try:
            difference = quality_drop(
                gate_metric(params.data.label.kind, params.promotion.metric),
                params.data.label.kind,
                (first[LABEL].to_numpy(), outputs_of(first, params)),
                (second[LABEL].to_numpy(), outputs_of(second, params)),
                paired=False,
                alpha=alpha,
                resamples=resamples,
                seed=seed,
            )
        except ValueError as error:  # e.g. one class only among a version's labeled rows
            log.info("%s: realized quality not computed yet: %s", model, error)
    checks.append(
        quality_check(
            "realized_quality",
            difference,
            rows,
            min_samples=min_samples,
            max_drop=max_quality_drop,
        )
    )
    return checks
