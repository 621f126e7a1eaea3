"""The MLflow model registry: versions with lineage and artifact digests, aliases, and the
verified download of a version's serving files."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.config import RegistryParams
from maas.errors import RegistryError
from maas.serving.inference import (
    MODEL_CONFIG_FILE,
    ONNX_FILE,
    PREPROCESSING_FILE,
    SERVING_FILES,
    WEIGHTS_FILE,
    sha256_file,
    verify_digests,
)
from maas.serving.preprocessing import Preprocessor
from maas.tracking import serving_code
from maas.tracking.alias_lock import champion_lock
from maas.tracking.keyring import Key
from maas.tracking.verdict import require_verdict

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PYFUNC_SOURCE = Path(__file__).with_name("pyfunc_model.py")
SHA_TAG_PREFIX = "sha256."


def serving_digests(models_dir: Path) -> dict[str, str]:
    return {name: sha256_file(models_dir / name) for name in SERVING_FILES}


def register_version(
    client: MlflowClient,
    params: RegistryParams,
    run_id: str,
    models_dir: Path,
    tags: Mapping[str, str],
    input_example: Any,
    pip_requirements: list[str],
) -> Any:
    """Log the pyfunc model (models-from-code) with the serving artifacts, then create the
    version with every lineage tag in the same call, so no version exists without its tags."""
    import mlflow

    digests = serving_digests(models_dir)
    artifacts = {
        name: str(models_dir / name)
        for name in (ONNX_FILE, PREPROCESSING_FILE, MODEL_CONFIG_FILE, WEIGHTS_FILE)
    }
    package_dir = Path(__file__).resolve().parents[1]  # all of `maas`: the pyfunc imports it
    scratch = tempfile.TemporaryDirectory(prefix="maas-serving-code-")
    code = Path(scratch.name) / serving_code.ARTIFACT
    artifacts[serving_code.ARTIFACT] = str(code)
    tags = {**tags, serving_code.DIGEST_TAG: serving_code.snapshot(code)}
    with scratch, mlflow.start_run(run_id=run_id, log_system_metrics=False):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_SOURCE),
            artifacts=artifacts,
            code_paths=[str(package_dir)],
            model_config={"sha256": digests, "threshold": 0.5},
            pip_requirements=pip_requirements,
            input_example=input_example,
            signature=input_signature(input_example, optional_inputs(models_dir)),
        )
        all_tags = {**tags, **{f"{SHA_TAG_PREFIX}{k}": v for k, v in digests.items()}}
        version = client.create_model_version(
            name=_ensure_registered_model(client, params.model_name, params.description),
            source=info.model_uri,
            run_id=run_id,
            tags=all_tags,
            model_id=info.model_id,
        )
    return client.get_model_version(params.model_name, str(version.version))


def optional_inputs(models_dir: Path) -> set[str]:
    """The request fields the task marks optional (the model's request spec)."""
    spec = Preprocessor.load(models_dir / PREPROCESSING_FILE).request
    return {field.name for field in spec.fields if field.optional} if spec else set()


def input_signature(example: Any, optional: set[str]) -> Any:
    """The example's column types; the optional inputs may be null or absent."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    inferred = infer_signature(example).inputs.inputs
    columns: list[Any] = [
        ColSpec(c.type, c.name, required=c.name not in optional) for c in inferred
    ]
    return ModelSignature(inputs=Schema(columns))


def _ensure_registered_model(client: MlflowClient, name: str, description: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=description)
        except MlflowException:  # a concurrent run created it first
            client.get_registered_model(name)
    return name


def _not_found(error: Any) -> bool:
    """An MlflowException that says the model, version or alias does not exist."""
    return "RESOURCE_DOES_NOT_EXIST" in str(error.error_code) or "not found" in str(error).lower()


def _model_missing(client: MlflowClient, name: str) -> bool:
    """Whether the registered model `name` does not exist. MLflow's basic-auth app (team mode)
    answers 403, not 404, to a non-admin asking about a model that does not exist yet; a
    search (filtered to what the user may read) tells the two apart."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    return not client.search_registered_models(filter_string=f"name = '{quoted}'")


def get_alias_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if _not_found(error):
            return None
        if "PERMISSION_DENIED" in str(error.error_code) and _model_missing(client, name):
            return None
        raise


def get_version(client: MlflowClient, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version!r}") from None


def set_alias(client: MlflowClient, name: str, alias: str, version: str, attempts: int = 5) -> None:
    """Point `alias` at `version`. MLflow's SQL store reads, then inserts or updates: two
    runs setting the same alias at once make one fail on the unique key (seen with eight
    concurrent registrations on SQLite); the retry finds the row and updates it."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(name, alias, str(version))
            return
        except MlflowException as error:
            if "UNIQUE constraint" not in str(error) and "duplicate key" not in str(error):
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def model_exists(client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if _not_found(error):
            return False
        raise
    return True


def promote(client: MlflowClient, name: str, version: str, reason: str = "manual") -> Any:
    """Move `champion` to `version` (the previous champion keeps its tags for rollback)."""
    target = get_version(client, name, version)
    with champion_lock(client.tracking_uri, name):  # no maas move lands in between
        previous = get_alias_version(client, name, CHAMPION)
        set_alias(client, name, CHAMPION, target.version)
    client.set_model_version_tag(name, target.version, "promoted_by", reason)
    if previous is not None and previous.version != target.version:
        client.set_model_version_tag(name, target.version, "previous_champion", previous.version)
    return target


def resolve_version(client: MlflowClient, name: str, ref: str) -> Any:
    """A version number or an alias (`champion`) -> the ModelVersion."""
    if ref.isdigit():
        return get_version(client, name, ref)
    version = get_alias_version(client, name, ref)
    if version is None:
        raise RegistryError(f"model {name!r} has no alias {ref!r}")
    return version


def version_digests(version: Any) -> dict[str, str]:
    return {
        k[len(SHA_TAG_PREFIX) :]: v for k, v in version.tags.items() if k.startswith(SHA_TAG_PREFIX)
    }


def release_tag(version: Any) -> str:
    """`v<N>-<id>`: a version's name outside the tracking store (BentoML models, Bentos, images).

    Version numbers repeat: another project on this machine, or this one after its registry
    was reset, has its own v1. The id digests what makes this v<N> itself, its run and its
    serving files' sha256, so those names never meet (a registry rebuilt from a backup keeps
    the run ids and digests, and so its names)."""
    digest = hashlib.sha256(str(version.run_id).encode())
    digest.update(json.dumps(version_digests(version), sort_keys=True).encode())
    return f"v{version.version}-{digest.hexdigest()[:10]}"


def logged_model_id(version: Any) -> str:
    """The LoggedModel behind a version (the SQL store leaves `model_id` empty; source has it)."""
    if version.model_id:
        return str(version.model_id)
    source = str(version.source or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    raise RegistryError(f"version {version.version} has no logged model to download ({source})")


def download_serving_artifacts(client: MlflowClient, version: Any, dest: Path) -> Path:
    """Download only the serving files of a version and verify each sha256 against its tags."""
    import mlflow

    location = client.get_logged_model(logged_model_id(version)).artifact_location.rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    for name in SERVING_FILES:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/artifacts/{name}", dst_path=str(dest)
        )
    verify_digests(dest, version_digests(version))
    return dest


def download_serving_code(client: MlflowClient, version: Any, dest: Path) -> Path:
    """The serving code recorded with a version, as a build context, digest-verified."""
    import mlflow

    if not version.tags.get(serving_code.DIGEST_TAG):
        return serving_code.verify(dest, None, str(version.version))  # says why
    location = client.get_logged_model(logged_model_id(version)).artifact_location.rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/artifacts/{serving_code.ARTIFACT}", dst_path=str(dest)
    )
    context = dest / serving_code.ARTIFACT
    return serving_code.verify(context, version.tags[serving_code.DIGEST_TAG], str(version.version))


def score_version(client: MlflowClient, version: Any, frame: Any, key: Key) -> Any:
    """A version's probabilities for `frame`, by its own digest-verified artifacts and its
    recorded serving code (never unpickled; the checkout's code may have changed since).
    Its signed verdict (`key`: the gate key) is verified first: digests a registry writer can
    set are no proof; UntrustedVersionError before anything is downloaded or run."""
    require_verdict(key, version)
    with tempfile.TemporaryDirectory(prefix=f"maas-v{version.version}-") as tmp:
        model_dir = download_serving_artifacts(client, version, Path(tmp) / "model")
        context = download_serving_code(client, version, Path(tmp) / "code")
        return serving_code.score_with(context, model_dir, frame)


def set_version_tags(
    client: MlflowClient, name: str, version: str, tags: Mapping[str, str]
) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def delete_version_tags(
    client: MlflowClient, name: str, version: str, keys: tuple[str, ...], present: Mapping[str, str]
) -> None:
    """Delete those of `keys` that the version has (`present`: its tags; MLflow refuses to
    delete a tag that is not there)."""
    for key in keys:
        if key in present:
            client.delete_model_version_tag(name, str(version), key)
