"""The serving code recorded with a version: the image, the infra-validation reference and the
re-scoring run the code the version was validated with, and a modified copy is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.config import RegistryParams
from maas.pipeline.register import serving_requirements
from maas.serving.inference import OnnxModel
from maas.tracking import serving_code
from maas.tracking.keyring import load_key
from maas.tracking.registry import download_serving_code, register_version, score_version
from maas.tracking.runs import start_pipeline_run
from maas.tracking.store import connect
from maas.tracking.verdict import SIGNATURE_TAG, sign_verdict
from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS, make_flights, write_tiny_model


@pytest.fixture(scope="module")
def registered(tmp_path_factory, small_params):
    root = tmp_path_factory.mktemp("serving-code")
    registry = RegistryParams(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=root / "artifacts",
        model_name="code",
        experiment="code",
    )
    frame = make_flights(300, month=12, seed=3)
    models = write_tiny_model(root / "models", small_params, frame)
    client = connect(registry)
    tracking = start_pipeline_run(registry, {"p": 1}, "digest")
    records = frame[[*RECORD_FIELDS, *WEATHER_FIELDS]]
    version = register_version(
        client, registry, tracking.run_id, models, {}, records.head(20), serving_requirements()
    )
    key = load_key(root / "gate.key", create=True)
    signature = sign_verdict(key, "code", "1", tracking.run_id, dict(version.tags))
    client.set_model_version_tag("code", "1", SIGNATURE_TAG, signature)
    return client, client.get_model_version("code", "1"), models, records, key


def test_a_version_records_the_code_the_bentofile_ships(registered, tmp_path) -> None:
    client, version, _, _, _ = registered
    assert version.tags[serving_code.DIGEST_TAG] == serving_code.code_digest()
    context = download_serving_code(client, version, tmp_path)
    shipped = serving_code.service_files(context / "bentofile.yaml", context)
    assert shipped == serving_code.service_files()
    for name in shipped:
        assert (context / name).read_bytes() == (serving_code.SRC_DIR / name).read_bytes()


def test_a_modified_recorded_copy_is_refused_naming_both_digests(registered, tmp_path) -> None:
    client, version, _, _, _ = registered
    context = download_serving_code(client, version, tmp_path / "one")
    (context / "maas/serving/preprocessing.py").write_text("# changed\n", encoding="utf-8")
    expected = version.tags[serving_code.DIGEST_TAG]
    with pytest.raises(serving_code.ServingCodeError, match=f"not the registered {expected}"):
        serving_code.verify(context, expected, "1")


def test_scoring_runs_the_recorded_code_not_the_checkouts(registered, tmp_path) -> None:
    """The same artifacts through the recorded copy equal the checkout's scores while the
    code is the same; a different recorded copy gives its own answers (it is what runs)."""
    client, version, models, records, key = registered
    sample = records.head(50).reset_index(drop=True)
    current = OnnxModel.load(models).predict(sample)
    assert score_version(client, version, sample, key) == pytest.approx(current, abs=1e-7)
    context = download_serving_code(client, version, tmp_path / "two")
    inference = context / "maas/serving/inference.py"
    inference.write_text(
        inference.read_text().replace(
            "return self.score(columns)[0]", "return self.score(columns)[0] * 0"
        )
    )
    assert serving_code.score_with(context, models, sample).max() == 0.0


def test_a_version_without_recorded_code_is_named(tmp_path: Path) -> None:
    with pytest.raises(serving_code.ServingCodeError, match="v7 has no recorded serving code"):
        serving_code.verify(tmp_path, None, "7")


def _context(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    (root / "bentofile.yaml").write_text('include: ["maas/*.py"]\n')
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root / "bentofile.yaml"


def test_the_code_digest_frames_each_file_so_two_sets_never_share_one(tmp_path) -> None:
    """Issue 29.16: joined without lengths, one file holding `X` + the next file's name and
    bytes digested like the two files; each name and content is framed by its length now,
    and a digest recorded before (no `v2:`) still verifies its own code."""
    two = _context(tmp_path / "two", {"maas/a.py": b"X", "maas/b.py": b"Y"})
    one = _context(tmp_path / "one", {"maas/a.py": b"Xmaas/b.py\0Y"})
    assert serving_code.unframed_digest(two, two.parent) == serving_code.unframed_digest(
        one, one.parent
    )  # the ambiguity, shown
    assert serving_code.code_digest(two, two.parent) != serving_code.code_digest(one, one.parent)
    assert serving_code.code_digest(two, two.parent).startswith("v2:")
    legacy = serving_code.unframed_digest(two, two.parent)
    assert serving_code.verify(two.parent, legacy, "1") == two.parent  # registered before
    with pytest.raises(serving_code.ServingCodeError, match="was modified"):
        serving_code.verify(one.parent, serving_code.code_digest(two, two.parent), "1")
