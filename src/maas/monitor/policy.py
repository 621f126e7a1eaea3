"""The monitoring policy (`monitoring:` in params): when a judged period is a breach, and
whether a breach retrains now. Pure decisions over numbers and times; the flow acts on them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from maas.config import MonitoringParams
from maas.config.kinds import METRICS, better


@dataclass(frozen=True)
class Verdict:
    breaches: list[str]  # why the period is a breach (empty: none)
    judged: bool  # enough rows to judge anything

    @property
    def breach(self) -> bool:
        return bool(self.breaches)


def judge(period: dict[str, Any], policy: MonitoringParams) -> Verdict:
    """A period's breaches: input drift (served or arrived rows) at or above `drift_share`, or
    the realized gate metric below the registered one by more than `metric_drop` — the
    champion's, and each other version's that served in the period against its own."""
    reasons: list[str] = []
    judged = False
    for source in ("served", "arrived"):
        drift = period.get(f"{source}_drift")
        if not drift or drift["rows"][1] < policy.min_rows:
            continue
        judged = True
        if drift["share"] >= policy.drift_share:
            reasons.append(
                f"{source} inputs drifted: {drift['share']:.0%} of columns "
                f"({', '.join(drift['drifted'])}) >= {policy.drift_share:.0%}"
            )
    realized, registered = period.get("realized"), period.get("registered")
    if realized and registered and realized["rows"] >= policy.min_rows:
        name, value = registered["metric"], registered["value"]
        now = realized["metrics"].get(name)
        if now is not None and value is not None:
            judged = True
            drop = -better(METRICS[name], now, value)
            if drop > policy.metric_drop:
                how = " (re-scored)" if realized.get("source") == "rescored" else ""
                reasons.append(
                    f"v{period.get('champion')}'s realized {name}{how} {now:.4f} is {drop:.4f} "
                    f"below its registered {value:.4f} (> {policy.metric_drop})"
                )
    for version, own in sorted((period.get("realized_by_version") or {}).items()):
        if version == period.get("champion") or own["rows"] < policy.min_rows:
            continue  # the champion's own rows are `realized` above
        name, value = own["registered"]["metric"], own["registered"]["value"]
        now = own["metrics"].get(name)
        if now is None or value is None:
            continue
        judged = True
        drop = -better(METRICS[name], now, value)
        if drop > policy.metric_drop:
            reasons.append(
                f"v{version}'s realized {name} {now:.4f} is {drop:.4f} below its registered "
                f"{value:.4f} (> {policy.metric_drop})"
            )
    return Verdict(reasons, judged)


def may_retrain(
    policy: MonitoringParams,
    last: str | None,
    now: dt.datetime,
    newest: str | None = None,
    seen: str | None = None,
) -> str | None:
    """None when a breach may start a training run now; else why not. `newest`: the newest
    partition in the raw data; `seen`: the newest one the champion was trained or tested on.
    A run on the data the champion has already seen would learn nothing new."""
    if not policy.retrain:
        return "monitoring.retrain is off"
    if newest is not None and seen is not None and newest <= seen:
        return f"no partition arrived after {seen}, the newest the champion has seen"
    if last is not None:
        since = now - dt.datetime.fromisoformat(last)
        if since < dt.timedelta(hours=policy.cooldown_h):
            hours = since.total_seconds() / 3600
            return f"cooling down: last retraining {hours:.1f} h ago (< {policy.cooldown_h} h)"
    return None
