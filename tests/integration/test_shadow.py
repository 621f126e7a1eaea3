"""The shadow replay with the real parts (issue 30 item 2): a signed tiny champion's answers
written to the prediction log as its service answers, then replayed by a registered version
through the batch-scoring path (verified verdict, recorded serving code in a child process):
the champion against itself disagrees by nothing, another signed version by something, and an
unsigned one is refused before anything of it runs. Also `maas rollout shadow --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from maas.errors import UntrustedVersionError
from maas.operate.shadow import checks_of, shadow_checks, shadow_report
from maas.scoring.lineage import recent_jobs
from maas.serving.inference import OnnxModel, request_spec
from maas.serving.schema import build_schema
from tests.helpers import make_flights, register_tiny, signed_champion, write_tiny_model
from tests.unit.operate.served_logs import arrive_labels, flight_params, records_of, serve

pytestmark = pytest.mark.integration


def answers(models, records: list[dict]) -> list[dict]:
    """What the service answers for `records` (its schema, its scoring call, its response)."""
    model = OnnxModel.load(models)
    schema = build_schema(
        request_spec(models), 10_000, frozenset(model.preprocessor.clock_inputs or ())
    )
    valid = [schema.record.model_validate(record) for record in records]
    response = schema.to_response("1", *model.score(schema.to_columns(valid)))
    return json.loads(response.model_dump_json())["predictions"]


def sign(params, client, tracking, version) -> None:
    from maas.tracking.keyring import load_key
    from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict

    key = load_key(params.promotion.verdict_key_file)
    name, number = params.registry.model_name, str(version.version)
    signature = sign_verdict(key, name, number, tracking.run_id, dict(version.tags))
    client.set_model_version_tag(name, number, SIGNATURE_TAG, signature)


@pytest.fixture
def served(tmp_path, small_params):
    """v1 (champion) answered 300 December flights, logged; their labels have arrived; v2 is
    another signed model (fitted on other flights), v3 is unsigned."""
    base, client, _, frame, models = signed_champion(tmp_path, small_params, "shadow")
    params = flight_params(tmp_path, base)
    records = records_of(frame, params)
    serve(params, "1", records, answers(models, records))
    arrive_labels(params, frame)
    other = make_flights(300, month=11, seed=9)
    second = write_tiny_model(tmp_path / "models-2", small_params, other)
    _, tracking, version = register_tiny(params.registry, second, other, {"gate_passed": "true"})
    sign(params, client, tracking, version)
    register_tiny(params.registry, second, other, {"gate_passed": "true"})  # v3: unsigned
    return params, client


def test_the_champion_replayed_against_itself_disagrees_by_nothing(served) -> None:
    params, client = served
    report = shadow_report(params, client, "1", "1", resamples=200)
    assert (report.requests, report.records, report.refused) == (30, 300, 0)
    assert report.disagreement is not None
    assert report.disagreement.mean_abs_delta < 1e-6  # float32 ONNX, logged as JSON
    assert report.disagreement.rank_correlation == pytest.approx(1.0)
    assert report.labeled == 300 and report.quality is not None
    assert abs(report.quality.drop) < 1e-6 and report.quality.metric == "roc_auc"
    assert report.latency_ms is not None and 0 < report.latency_ms < 50
    checks = checks_of(report, min_requests=20, min_labeled=200)
    assert [check.passed for check in checks] == [True, True, True], checks
    (job,) = recent_jobs(client, "shadow")  # the replay's scoring job, with its lineage
    assert job["version"] == "1" and job["rows"] == 300.0


def test_another_version_disagrees_and_an_unsigned_one_is_refused(served) -> None:
    params, client = served
    report = shadow_report(params, client, "1", "2", resamples=200)
    assert report.refused == 0 and report.disagreement is not None
    assert report.disagreement.mean_abs_delta > 1e-3  # other weights' scaling, other answers
    assert report.quality is not None and np.isfinite(report.quality.candidate)
    replay, disagreeing, quality = checks_of(report, min_requests=20)
    assert replay.passed is True and disagreeing.numbers["mean_abs_delta"] > 1e-3
    assert quality.numbers["candidate_rows"] == 300
    waiting = shadow_checks(params, client, "1", "2", min_requests=100)  # 30 requests
    assert [check.passed for check in waiting] == [None, None, None]
    assert "30 replayed requests < 100" in waiting[0].reason
    with pytest.raises(UntrustedVersionError, match="v3 is not trusted"):
        shadow_report(params, client, "1", "3")
    # neither the waiting replay (nothing scored below the minimum) nor v3 ran a scoring job
    assert [job["version"] for job in recent_jobs(client, "shadow")] == ["2"]


def test_the_command_prints_the_report_as_json(served) -> None:
    from maas.cli import app

    params, _ = served
    overrides = [
        f"registry.tracking_uri={params.registry.tracking_uri}",
        f"registry.artifact_root={params.registry.artifact_root}",
        f"registry.model_name={params.registry.model_name}",
        f"registry.experiment={params.registry.experiment}",
        f"promotion.verdict_key_file={params.promotion.verdict_key_file}",
        f"monitoring.log_dir={params.monitoring.log_dir}",
        f"data.raw_dir={params.data.raw_dir}",
    ]
    arguments = ["rollout", "shadow", "--version", "2", "--since", "1h", "--json"]
    for override in overrides:
        arguments += ["--set", override]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["champion"] == "1" and body["candidate"] == "2" and body["records"] == 300
    assert [check["name"] for check in body["checks"]] == [
        "shadow_replay",
        "shadow_disagreement",
        "shadow_quality",
    ]
    # judged with the task's deploy.rollout thresholds, as a rollout's shadow step is
    strict = [*arguments, "--set", "deploy.rollout.min_requests=100000"]
    waiting = json.loads(CliRunner().invoke(app, strict).stdout)["checks"]
    assert all(c["passed"] is None and "< 100000" in c["reason"] for c in waiting), waiting
    refused = CliRunner().invoke(app, [*arguments[:3], "3", *arguments[4:]])
    assert refused.exit_code == 1 and "v3 is not trusted" in refused.output
    bad = CliRunner().invoke(app, [*arguments[:5], "yesterday", *arguments[6:]])
    assert bad.exit_code == 2 and "neither an ISO time" in bad.output
