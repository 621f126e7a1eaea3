"""The promotion gate: floors, baselines, no regression against the champion, validation;
then the promotion policy (does the new version become `champion`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from maas.config import PromotionParams


@dataclass
class GateDecision:
    passed: bool
    promoted: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def champion_unusable(champion: dict[str, Any] | None) -> str | None:
    """Why the re-scored champion cannot be compared with (it was not scored, or it trained on
    the test partitions, so its score there is inflated); None when it can."""
    if champion is None:
        return None
    if "unscored" in champion:
        return (
            f"champion v{champion['version']} could not be re-scored ({champion['unscored']}): "
            "no comparison with it"
        )
    if champion.get("train_overlap"):
        return (
            f"champion v{champion['version']} trained on the test partition(s) "
            f"{', '.join(champion['train_overlap'])}: its score there is inflated, so it is "
            "not compared with"
        )
    return None


def decide_gate(
    test: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion: dict[str, Any] | None,
    validation_status: str,
    params: PromotionParams,
    optional_absent: dict[str, float] | None = None,
) -> GateDecision:
    """Floors, baselines, no regression vs the champion, validation; then the promotion policy.

    `optional_absent`: the test metrics of records without the optional inputs (a request
    shape the API accepts), held to `min_roc_auc_optional_absent`."""
    reasons: list[str] = []
    failed = False
    auc = test["roc_auc"]
    shapes = [("", auc, params.min_roc_auc)]
    if optional_absent is not None:  # every request shape the API accepts has a floor
        shapes.append((" with the optional inputs absent", optional_absent["roc_auc"],
                       params.min_roc_auc_optional_absent))  # fmt: skip
    for shape, value, floor in shapes:
        verdict = "is below" if value < floor else "meets"
        failed = failed or value < floor
        reasons.append(f"ROC AUC {value:.4f}{shape} {verdict} the floor {floor:.4f}")
    for name in params.must_beat:
        base = baselines[name]["roc_auc"]
        margin = auc - base
        if margin > 0:
            reasons.append(f"beats baseline {name} (ROC AUC {base:.4f}, {margin:+.4f})")
        elif margin >= -params.baseline_tolerance and name != "prior":
            reasons.append(
                f"within {params.baseline_tolerance} of baseline {name} "
                f"(ROC AUC {base:.4f}, {margin:+.4f})"
            )
        else:
            failed = True
            reasons.append(f"does not beat baseline {name} (ROC AUC {base:.4f}, {margin:+.4f})")
    if params.require_validation and validation_status == "failed":
        failed = True
        reasons.append("data validation failed")
    beats_champion = True
    unusable = champion_unusable(champion)
    if unusable is not None:
        reasons.append(unusable)
        champion = None
    if champion is not None:
        champ_auc = float(champion["roc_auc"])
        if auc < champ_auc - params.max_regression:
            failed = True
            reasons.append(
                f"regresses vs champion v{champion['version']} (ROC AUC {champ_auc:.4f}) by more "
                f"than {params.max_regression}"
            )
        beats_champion = auc > champ_auc
        if not failed:
            reasons.append(
                f"{'beats' if beats_champion else 'does not beat'} champion v{champion['version']} "
                f"(ROC AUC {champ_auc:.4f}) on the same test month"
            )
    elif unusable is None:
        reasons.append("no champion yet")
    promoted = not failed and params.auto_promote and beats_champion
    if not failed and not params.auto_promote:
        reasons.append("auto_promote is off: promote by hand with `maas promote`")
    return GateDecision(passed=not failed, promoted=promoted, reasons=reasons)
