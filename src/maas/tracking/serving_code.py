"""The serving code a version was registered with: the files the bentofile ships (the serving
package and the bentofile itself), recorded beside the model with their digest, so the
version's image, its infra-validation reference and its re-scoring all run the code it was
validated with, not whatever the checkout holds later.

`bentofile.yaml` is the one list of what goes into the image (its `service` and `include`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maas.errors import ServingCodeError
from maas.redact import secret_name

SRC_DIR = Path(__file__).resolve().parents[2]  # the checkout's build context (holds maas/)
BENTOFILE = SRC_DIR.parent / "bentofile.yaml"  # beside src/, whatever the working directory
ARTIFACT = "serving_code"  # the folder in the logged model's artifacts
DIGEST_TAG = "serving_code_sha256"  # on the model version


def read_bentofile(bentofile: Path = BENTOFILE) -> dict[str, Any]:
    import yaml

    if not bentofile.is_file():
        raise ServingCodeError(f"BentoML build file {bentofile} not found")
    spec: dict[str, Any] = yaml.safe_load(bentofile.read_text()) or {}
    return spec


def service_files(bentofile: Path = BENTOFILE, root: Path = SRC_DIR) -> list[str]:
    """The source files the bentofile's `include` patterns select under `root` (what goes
    into the image), relative to `root` and sorted; `exclude` patterns are left out."""
    spec = read_bentofile(bentofile)
    excluded = [str(pattern).strip("/") for pattern in spec.get("exclude") or []]
    found: set[str] = set()
    for pattern in spec.get("include") or []:
        for path in root.glob(str(pattern)):
            relative = path.relative_to(root)
            if path.is_file() and not any(part in excluded for part in relative.parts):
                found.add(relative.as_posix())
    if not found:
        raise ServingCodeError(f"{bentofile} includes no files under {root}")
    return sorted(found)


FRAMED = "v2:"  # the digest's scheme: each name and content framed by its length


def code_digest(bentofile: Path = BENTOFILE, root: Path = SRC_DIR) -> str:
    """sha256 over the bentofile and every file it ships, each name and content preceded by
    its length (8 bytes, big-endian), so that no two sets of files share a digest; written
    `v2:<hex>`."""
    digest = hashlib.sha256()
    entries = [("bentofile.yaml", bentofile)]
    entries += [(name, root / name) for name in service_files(bentofile, root)]
    for name, path in entries:
        for part in (name.encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big") + part)
    return FRAMED + digest.hexdigest()


def unframed_digest(bentofile: Path, root: Path) -> str:
    """The digest versions registered before `v2:` carry (names and bytes joined by a NUL,
    without lengths). Still verified so that they stay deployable; their tag is covered by
    the signed verdict, so a version recorded with `v2:` can never be passed off as one."""
    digest = hashlib.sha256(bentofile.read_bytes())
    for name in service_files(bentofile, root):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()


def snapshot(dest: Path, bentofile: Path = BENTOFILE, root: Path = SRC_DIR) -> str:
    """Copy the bentofile and the files it ships into `dest` (a build context of its own:
    dest/bentofile.yaml, dest/maas/...); returns their digest."""
    dest.mkdir(parents=True)
    shutil.copy(bentofile, dest / "bentofile.yaml")
    for name in service_files(bentofile, root):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, dest / name)
    return code_digest(dest / "bentofile.yaml", dest)


def verify(context: Path, expected: str | None, version: str) -> Path:
    """The recorded build context, checked against the digest recorded at registration."""
    if not expected:
        raise ServingCodeError(
            f"v{version} has no recorded serving code ({DIGEST_TAG} tag): it was registered "
            "before maas recorded it; package it from the commit in its git_commit tag"
        )
    bentofile = context / "bentofile.yaml"
    framed = expected.startswith(FRAMED)
    found = code_digest(bentofile, context) if framed else unframed_digest(bentofile, context)
    if found != expected:
        raise ServingCodeError(
            f"v{version}'s recorded serving code has sha256 {found}, not the registered "
            f"{expected}: it was modified; refusing to build or score with it"
        )
    return context


# what the child that runs recorded code needs to start Python and find its libraries; not
# the gate key, tracking credentials or any other secret of this process
CHILD_ENV = ("PATH", "LANG", "HOME", "TMPDIR", "TZ", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
CHILD_ENV_PREFIXES = ("LC_", "PYTHON")


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted part of `environ` for a child process that runs recorded code."""
    return {
        name: value
        for name, value in environ.items()
        if (name in CHILD_ENV or name.startswith(CHILD_ENV_PREFIXES)) and not secret_name(name)
    }


SCORE_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])  # the recorded serving code, before any installed maas
from pathlib import Path
import numpy as np, pandas as pd
from maas.serving.inference import OnnxModel
model = OnnxModel.load(Path(sys.argv[2]))
predict = getattr(model, "predict", None) or model.predict_proba  # code recorded before kinds
np.save(sys.argv[4], predict(pd.read_parquet(sys.argv[3])))
"""


def score_with(context: Path, model_dir: Path, frame: Any) -> Any:
    """Probabilities for `frame`'s records from the serving artifacts in `model_dir`, scored
    by the recorded serving code in `context` (its own process: this one holds another maas),
    with an allowlisted environment (`child_environment`). The caller has verified the
    version's signed verdict first (maas.tracking.verdict.require_verdict)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="maas-score-") as tmp:
        rows, probs = Path(tmp) / "rows.parquet", Path(tmp) / "probs.npy"
        frame.to_parquet(rows, index=False)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                SCORE_SCRIPT,
                str(context),
                str(model_dir),
                str(rows),
                str(probs),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=child_environment(os.environ),
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ServingCodeError(f"scoring with the recorded serving code failed: {tail}")
        return np.load(probs)
