"""What the evaluate stage hands on: the test metrics next to the baselines and the champion,
and the gate's decision, as one frozen value (written as metrics.json, read by register)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from maas.pipeline.evaluation.gate import GateDecision


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
