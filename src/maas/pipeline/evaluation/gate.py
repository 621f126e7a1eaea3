"""The promotion gate: floors, baselines, no regression against the champion, validation;
then the promotion policy (does the new version become `champion`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from maas.config import PromotionParams
from maas.config.kinds import METRICS, baseline_names, better, gate_metric


@dataclass
class GateDecision:
    passed: bool
    promoted: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def champion_unusable(champion: dict[str, Any] | None, metric: str = "roc_auc") -> str | None:
    """Why the re-scored champion cannot be compared with (it was not scored, it has no value
    of the gate metric, or it trained on the test partitions, so its score there is inflated);
    None when it can."""
    if champion is None:
        return None
    if "unscored" in champion:
        return (
            f"champion v{champion['version']} could not be re-scored ({champion['unscored']}): "
            "no comparison with it"
        )
    if metric not in champion:
        return f"champion v{champion['version']} has no {metric}: no comparison with it"
    if champion.get("train_overlap"):
        return (
            f"champion v{champion['version']} trained on the test partition(s) "
            f"{', '.join(champion['train_overlap'])}: its score there is inflated, so it is "
            "not compared with"
        )
    return None


RARE_POSITIVE = 0.03  # a positive share at most this: PR AUC is the telling score


def rare_positive(test: dict[str, float], positive_rate: float | None) -> str | None:
    """A binary task with a rare positive: ROC AUC reads high on it, PR AUC against its chance
    level (the positive share) tells more; None otherwise."""
    if positive_rate is None or positive_rate > RARE_POSITIVE or "pr_auc" not in test:
        return None
    return (
        f"rare positive ({positive_rate:.1%} of test rows): PR AUC {test['pr_auc']:.4f} against "
        f"{positive_rate:.4f} by chance, beside ROC AUC {test['roc_auc']:.4f}"
    )


def decide_gate(
    test: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion: dict[str, Any] | None,
    validation_status: str,
    params: PromotionParams,
    optional_absent: dict[str, float] | None = None,
    kind: str = "binary",
    positive_rate: float | None = None,
) -> GateDecision:
    """Floors, baselines, no regression vs the champion, validation; then the promotion policy.
    Baselines and the champion are compared on the gate metric (promotion.metric, else the
    kind's score) in its direction; floors apply to every metric of the kind they name.

    `optional_absent`: the test metrics of records without the optional inputs (a request
    shape the API accepts), held to `floors_optional_absent`. `positive_rate` (binary: the
    test rows' positive share): a rare positive is said, with PR AUC beside ROC AUC."""
    metric = gate_metric(kind, params.metric)
    name, label = metric.name, metric.label
    reasons: list[str] = []
    failed = False
    shapes = [("", test, params.floors)]
    if optional_absent is not None:  # every request shape the API accepts has a floor
        shapes.append(
            (" with the optional inputs absent", optional_absent, params.floors_optional_absent)
        )
    for shape, values, floors in shapes:
        for floored, floor in floors.items():
            if floored not in values:  # a metric of another kind
                continue
            rule = METRICS[floored]
            below = better(rule, values[floored], floor) < 0
            failed = failed or below
            verdict = ("is below" if rule.higher_is_better else "is above") if below else "meets"
            reasons.append(
                f"{rule.label} {values[floored]:.4f}{shape} {verdict} the floor {floor:.4f}"
            )
    value = test[name]
    for baseline in baseline_names(params.must_beat, kind):
        base = baselines[baseline][name]
        margin = better(metric, value, base)
        if margin > 0:
            reasons.append(f"beats baseline {baseline} ({label} {base:.4f}, {margin:+.4f})")
        elif margin >= -params.baseline_tolerance and baseline != "prior":
            reasons.append(
                f"within {params.baseline_tolerance} of baseline {baseline} "
                f"({label} {base:.4f}, {margin:+.4f})"
            )
        else:
            failed = True
            reasons.append(f"does not beat baseline {baseline} ({label} {base:.4f}, {margin:+.4f})")
    if params.require_validation and validation_status == "failed":
        failed = True
        reasons.append("data validation failed")
    beats_champion = True
    unusable = champion_unusable(champion, name)
    if unusable is not None:
        reasons.append(unusable)
        # a champion that could not be scored (an unreachable store, a refused signature) is
        # no evidence that this version is better: it passes, but only a person promotes it
        beats_champion = champion is None or "unscored" not in champion
        if not beats_champion:
            reasons.append("not promoted without a comparison: `maas promote` it by hand")
        champion = None
    if champion is not None:
        champ = float(champion[name])
        margin = better(metric, value, champ)
        if margin < -params.max_regression:
            failed = True
            reasons.append(
                f"regresses vs champion v{champion['version']} ({label} {champ:.4f}) by more "
                f"than {params.max_regression}"
            )
        beats_champion = margin > 0
        if not failed:
            reasons.append(
                f"{'beats' if beats_champion else 'does not beat'} champion v{champion['version']} "
                f"({label} {champ:.4f}) on the same test partitions"
            )
    elif unusable is None:
        reasons.append("no champion yet")
    note = rare_positive(test, positive_rate)
    if note is not None:
        reasons.append(note)
    promoted = not failed and params.auto_promote and beats_champion
    if not failed and not params.auto_promote:
        reasons.append("auto_promote is off: promote by hand with `maas promote`")
    return GateDecision(passed=not failed, promoted=promoted, reasons=reasons)
