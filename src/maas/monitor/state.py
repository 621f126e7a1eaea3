"""The monitoring flow's memory per task (`monitoring.state_dir/<task>.json`): each judged
period's result and the evidence it was judged on, the alerts already sent and the last
retraining. Written atomically after a period is fully recorded, so a run killed midway
leaves the previous state, and the next run judges that period again without counting
anything twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maas.files import replacing


def state_path(state_dir: Path, task: str) -> Path:
    return state_dir / f"{task}.json"


def read_state(state_dir: Path, task: str) -> dict[str, Any]:
    path = state_path(state_dir, task)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {"periods": {}, "last_retrain": None}
    except ValueError as error:
        raise ValueError(f"{path} is not monitoring state JSON ({error}): delete it") from None
    state.setdefault("periods", {})
    state.setdefault("last_retrain", None)
    return state


def write_state(state_dir: Path, task: str, state: dict[str, Any]) -> None:
    with replacing(state_path(state_dir, task)) as partial:
        partial.write_text(json.dumps(state, indent=1, sort_keys=True))


def judged_periods(state_dir: Path, task: str) -> list[dict[str, Any]]:
    """The task's judged periods in time order, as `maas status` shows them (unreadable state:
    none, with the reason logged by the next monitoring pass)."""
    try:
        periods = read_state(state_dir, task)["periods"]
    except ValueError:
        return []
    keep = (
        "period",
        "champion",
        "served_rows",
        "served_drift",
        "arrived_drift",
        "realized",
        "registered",
        "judged",
        "breaches",
        "judged_at",
        "run_id",
    )
    return [{k: periods[name].get(k) for k in keep} for name in sorted(periods)]
