"""What the evaluate stage hands on: the test metrics next to the baselines and the champion,
and the gate's decision, as one frozen value (written as metrics.json, read by register)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from maas.pipeline.evaluation.gate import GateDecision

if TYPE_CHECKING:
    from maas.config import EvaluateParams
    from maas.tracking.runs import RunTracking


@dataclass(frozen=True)
class Evaluation:
    kind: str
    classes: list[str]
    gate_metric: str  # the metric name the gate judges by (maas.config.kinds)
    test: dict[str, float]
    test_optional_absent: dict[str, float] | None  # the same rows with optional inputs left out
    optional_inputs: list[str]
    baselines: dict[str, dict[str, float]]
    champion: dict[str, Any] | None  # the re-scored champion (evaluation.champion), if any
    gate: GateDecision
    test_rows: int
    test_partitions: list[str]
    onnx_parity_max_abs_diff: float

    def to_json(self) -> dict[str, Any]:
        """The metrics.json document (and the run's `metrics`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Evaluation:
        return cls(**{**document, "gate": GateDecision(**document["gate"])})

    @property
    def compared_champion(self) -> str | None:
        """The champion version the gate compared with (None: there was none)."""
        return str(self.champion["version"]) if self.champion else None


def log_evaluation(tracking: RunTracking, metrics: Evaluation, evaluate: EvaluateParams) -> None:
    """The evaluation in the MLflow run: flat metrics, metrics.json, the plots, the gate tags."""
    flat = {f"test_{k}": v for k, v in metrics.test.items()}
    flat |= {
        f"test_optional_absent_{k}": v for k, v in (metrics.test_optional_absent or {}).items()
    }
    flat |= {f"{b}_{k}": v for b, m in metrics.baselines.items() for k, v in m.items()}
    champion = metrics.champion or {}
    flat |= {f"champion_{k}": v for k, v in champion.items() if isinstance(v, float)}
    tracking.log_metrics({**flat, "onnx_parity_max_abs_diff": metrics.onnx_parity_max_abs_diff})
    tracking.log_artifact(evaluate.metrics_path, "evaluation")
    tracking.log_artifacts(evaluate.plots_dir, "evaluation/plots")
    gate = metrics.gate
    tracking.set_tags(
        {"gate_passed": str(gate.passed).lower(), "gate_promoted": str(gate.promoted).lower()}
    )
