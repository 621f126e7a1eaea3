"""A progressive rollout's state: one record per model in `rollouts.json` beside the deploy
state, written atomically before each move it vouches for, so a controller killed at any point
finds what it was doing and resumes it or finishes it (`maas.operate.rollout`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from maas.config.rollout import ROLLOUT_SHADOW
from maas.errors import DeployError
from maas.files import write_text_atomic

ROLLOUTS_FILE = "rollouts.json"
# running: the steps go on; rolling_back / promoting: a decision is being carried out (a
# restarted controller finishes it, never routes the candidate again after a rollback)
Phase = Literal["running", "rolling_back", "promoting"]


@dataclass(frozen=True)
class Progress:
    """What a pass did to a rollout: `rolling_out` (a step goes on), `promoted`,
    `rolled_back` or `failed` (the candidate did not start: the previous version serves)."""

    action: str
    version: str
    label: str
    detail: str = ""


@dataclass
class Window:
    """What both versions had answered when a step began (the gateway's counters, the
    services' latency histograms): a step is judged on what happened since."""

    started: float  # epoch seconds
    counts: dict[str, list[int]] = field(default_factory=dict)  # role -> [requests, errors]
    latency: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> bucket -> n


@dataclass
class Rollout:
    """One model's rollout: `candidate` (where `champion` points) beside `previous` (what
    serves the rest), at `steps[step]`."""

    model: str
    candidate: str
    previous: str
    steps: list[int | str]
    containers: list[str]
    ports: list[int]
    image: str
    image_id: str
    started_at: str
    window: Window
    step: int = 0
    phase: Phase = "running"
    paused: bool = False
    reason: str = ""  # of the decision being carried out
    checks: list[dict[str, Any]] = field(default_factory=list)  # the last analysis
    previous_containers: list[str] = field(default_factory=list)  # removed once promoted
    champion_past: list[int] = field(default_factory=lambda: [0, 0])  # its past steps' counts
    shadow_at: float = 0.0  # when the shadow replay last ran (epoch seconds; 0: never)
    quality_at: float = 0.0  # when the live quality checks last ran (epoch seconds)

    @property
    def percent(self) -> int:
        """The candidate's share of live requests at this step (0 at the shadow step)."""
        current = self.steps[self.step]
        return 0 if current == ROLLOUT_SHADOW else int(current)

    @property
    def label(self) -> str:
        """What `GET /models`, `maas status` and the version's tags say: `canary 25%`."""
        if self.phase == "rolling_back":
            return "rolling back"
        if self.phase == "promoting":
            return "promoting"
        if self.paused:
            return f"paused at {self.step_label}"
        return self.step_label

    @property
    def step_label(self) -> str:
        current = self.steps[self.step]
        return ROLLOUT_SHADOW if current == ROLLOUT_SHADOW else f"canary {current}%"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Rollout:
        raw = dict(raw)
        raw["window"] = Window(**raw["window"])
        return cls(**raw)


@dataclass(frozen=True)
class RolloutStore:
    """`rollouts.json` in the deploy state folder: model -> its rollout in progress."""

    path: Path

    @classmethod
    def at(cls, state_dir: Path) -> RolloutStore:
        return cls(state_dir / ROLLOUTS_FILE)

    def read_all(self) -> dict[str, Rollout]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise DeployError(
                f"the rollout state {self.path} does not parse ({error}): `maas rollout abort` "
                "after removing it returns every model to what its deploy state says"
            ) from None
        return {model: Rollout.from_dict(entry) for model, entry in raw.items()}

    def get(self, model: str) -> Rollout | None:
        return self.read_all().get(model)

    def put(self, rollout: Rollout) -> None:
        rollouts = self.read_all()
        rollouts[rollout.model] = rollout
        self._write(rollouts)

    def remove(self, model: str) -> None:
        rollouts = self.read_all()
        if rollouts.pop(model, None) is not None:
            self._write(rollouts)

    def _write(self, rollouts: dict[str, Rollout]) -> None:
        state = {model: rollout.to_dict() for model, rollout in sorted(rollouts.items())}
        try:
            write_text_atomic(self.path, json.dumps(state, indent=1), durable=True)
        except OSError as error:
            raise DeployError(f"cannot write the rollout state {self.path}: {error}") from error
