"""Issue 27 item 4: whoever reaches the Prefect API must not re-aim a scheduled run. A run
created with `overrides: ["registry.tracking_uri=http://elsewhere"]` is accepted by
`load_params`; in a process `maas schedule` serves (the project pinned), it is refused."""

from __future__ import annotations

import pytest

from maas.config.scheduled import PIN_ENV, ScheduledProject, load_run_params, pin
from maas.errors import ConfigError
from tests.helpers import ROOT

PARAMS_FILE = str(ROOT / "params.yaml")
ELSEWHERE = "registry.tracking_uri=http://elsewhere:5000"


@pytest.fixture
def scheduled(monkeypatch):
    """This process as `maas schedule` would leave it: the owner's project pinned."""
    monkeypatch.setenv(PIN_ENV, "")  # undone after the test, with what `pin` writes
    owner = ScheduledProject(PARAMS_FILE, ("train.max_epochs=1",), "flight-delay")
    pin(owner)
    return owner


def test_without_a_pin_overrides_are_taken_as_given(monkeypatch) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    params = load_run_params(PARAMS_FILE, [ELSEWHERE], "flight-delay")
    assert params.registry.tracking_uri == "http://elsewhere:5000"  # what the attack relies on


def test_a_scheduled_run_refuses_the_callers_overrides(scheduled) -> None:
    with pytest.raises(ConfigError, match="not the caller's") as refused:
        load_run_params(PARAMS_FILE, [*scheduled.overrides, ELSEWHERE], scheduled.task)
    assert ELSEWHERE in str(refused.value)
    with pytest.raises(ConfigError, match="overrides"):
        load_run_params(PARAMS_FILE, [], scheduled.task)  # dropping the owner's is refused too


@pytest.mark.parametrize(
    ("params_file", "task"),
    [("/tmp/attacker/params.yaml", "flight-delay"), (PARAMS_FILE, "another-task")],
)
def test_a_scheduled_run_refuses_another_params_file_or_task(scheduled, params_file, task) -> None:
    with pytest.raises(ConfigError, match="refused"):
        load_run_params(params_file, list(scheduled.overrides), task)


def test_a_scheduled_run_with_the_owners_parameters_loads(scheduled) -> None:
    params = load_run_params(PARAMS_FILE, list(scheduled.overrides), scheduled.task)
    assert params.train.max_epochs == 1 and params.task == "flight-delay"
