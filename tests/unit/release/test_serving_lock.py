"""Issue 27.12: the serving image's packages are pinned by sha256, and what installs them in
the image (BentoML's requirements, then the pinned uv with hash-checking) refuses a package
swapped on the index, one the lock does not name, and a stale lock is noticed here."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from maas.errors import PackagingError
from maas.files import cache_home
from maas.release.base_image import uv_binary
from maas.release.serving_lock import (
    DECLARED,
    LOCK,
    declared_requirements,
    lock_problems,
    parse_lock,
    render,
    write_lock,
)
from maas.tracking.serving_code import BENTOFILE, SRC_DIR

BENTOML = importlib.metadata.version("bentoml")
HASH = "sha256:" + "a" * 64


@pytest.fixture(scope="module")
def uv(tmp_path_factory) -> Path:
    """The uv the image runs (pinned by version and sha256), on this machine."""
    return uv_binary(cache_home() / "base" / "wheels", tmp_path_factory.mktemp("uv"))


def test_the_lock_is_fresh_hashed_and_within_the_declared_ranges() -> None:
    """Fails after requirements.in or the installed bentoml changes until `make
    lock-serving` runs: the image would otherwise install what no one declared."""
    assert lock_problems(LOCK.read_text(), declared_requirements(), BENTOML) == []
    lock = parse_lock(LOCK.read_text())
    assert lock.require_hashes and {"bentoml", "numpy", "onnxruntime"} <= set(lock.packages)
    hashes = [h for package in lock.packages.values() for h in package.hashes]
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes)
    assert str(lock.packages["bentoml"].url).startswith("https://files.pythonhosted.org/")
    assert "requirements_txt: maas/serving/requirements.lock" in BENTOFILE.read_text()
    assert DECLARED.parent == LOCK.parent == SRC_DIR / "maas/serving"


@pytest.mark.slow
def test_make_lock_serving_writes_a_hashed_lock_and_names_what_cannot_be_resolved(
    tmp_path,
) -> None:
    """`make lock-serving` for real (PyPI, through the pinned uv), into a scratch file."""
    impossible = tmp_path / "impossible.in"
    impossible.write_text("numpy>=99\n")
    with pytest.raises(PackagingError, match="uv pip compile failed: .*numpy"):
        write_lock(tmp_path / "never.lock", impossible)
    assert not (tmp_path / "never.lock").exists()
    text = write_lock(tmp_path / "requirements.lock", DECLARED)
    assert (tmp_path / "requirements.lock").read_text() == text
    assert lock_problems(text, declared_requirements(), BENTOML) == []
    assert list(tmp_path.glob("*.partial")) == []


def _lock(*lines: str, require: bool = True) -> str:
    return "\n".join(["# a lock", *(["--require-hashes"] if require else []), *lines]) + "\n"


BENTOML_URL = f"bentoml @ https://example.org/bentoml-1.4.40-py3-none-any.whl --hash={HASH}"


@pytest.mark.parametrize(
    ("text", "declared", "installed", "problem"),
    [
        (_lock(f"numpy==2.1.0 --hash={HASH}", BENTOML_URL), "numpy<3", "1.4.40", None),
        (_lock("numpy==2.1.0", BENTOML_URL), "numpy", "1.4.40", "numpy==2.1.0 has no sha256"),
        (
            _lock(f"numpy==2.1.0 --hash={HASH}", BENTOML_URL, require=False),
            "numpy",
            "1.4.40",
            "--require-hashes is missing",
        ),
        (
            _lock(f"numpy>=2 --hash={HASH}", BENTOML_URL),
            "bentoml",
            "1.4.40",
            "numpy is not pinned to one version",
        ),
        (
            _lock(f"numpy==2.1.0 --hash={HASH}", BENTOML_URL),
            "numpy>=2.2",
            "1.4.40",
            "numpy==2.1.0 is outside declared numpy>=2.2",
        ),
        (_lock(BENTOML_URL), "onnxruntime>=1.20", "1.4.40", "onnxruntime is declared but not"),
        (
            _lock(f"numpy==2.1.0 --hash={HASH}", BENTOML_URL),
            "numpy",
            "1.4.41",
            "bentoml 1.4.40 is locked, 1.4.41 is installed",
        ),
        (
            _lock(f"numpy==2.1.0 --hash={HASH}", f"bentoml==1.4.40 --hash={HASH}"),
            "numpy",
            "1.4.40",
            "bentoml is not locked by URL",
        ),
    ],
)
def test_a_stale_or_unhashed_lock_is_named(text, declared, installed, problem) -> None:
    found = lock_problems(text, [Requirement(declared)], installed)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem), found
        assert found[0].endswith("(run `make lock-serving`)")


def test_render_pins_every_file_and_names_bentoml_by_its_wheel() -> None:
    def file(name: str, digest: str) -> dict:
        return {"url": f"https://files.example/{name}", "hashes": {"sha256": digest}}

    pylock = {
        "packages": [
            {
                "name": "bentoml",
                "version": "1.4.40",
                "wheels": [file("bentoml-1.4.40-py3-none-any.whl", "b" * 64)],
                "sdist": file("bentoml-1.4.40.tar.gz", "c" * 64),
            },
            {
                "name": "Pydantic_Core",
                "version": "2.1",
                "wheels": [file("w1.whl", "e" * 64), file("w2.whl", "d" * 64)],
            },
        ]
    }
    text = render(pylock)
    lock = parse_lock(text)
    assert lock.require_hashes and lock.problems == ()
    assert lock.packages["bentoml"].url == "https://files.example/bentoml-1.4.40-py3-none-any.whl"
    assert lock.packages["bentoml"].hashes == ("sha256:" + "b" * 64,)  # the wheel's only
    assert lock.packages["pydantic-core"].hashes == ("sha256:" + "d" * 64, "sha256:" + "e" * 64)


def bento_requirements(uv: Path, tmp_path: Path, monkeypatch) -> str:
    """The requirements BentoML writes into the Bento from this bentofile (what the image's
    Dockerfile installs with `uv pip install -r`), by BentoML's own code."""
    from _bentoml_sdk.images import populate_image_from_build_config
    from bentoml._internal.bento.build_config import BentoBuildConfig

    monkeypatch.setenv("PATH", f"{uv.parent}{os.pathsep}{os.environ['PATH']}")
    config = BentoBuildConfig.from_file(str(BENTOFILE)).with_defaults()
    image = populate_image_from_build_config(None, config, str(SRC_DIR))
    assert image is not None
    return image._freeze_python_requirements(tmp_path)


def test_bentoml_installs_the_lock_as_it_is(uv, tmp_path, monkeypatch) -> None:
    """BentoML adds its own unhashed `bentoml==` line unless the requirements name bentoml by
    URL, and re-resolves them unhashed with lock_packages: neither happens to the lock."""
    text = bento_requirements(uv, tmp_path, monkeypatch)
    assert parse_lock(text) == parse_lock(LOCK.read_text())
    assert not re.search(r"^bentoml==", text, re.M)


def _fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A wheel an attacker could put on the index under a locked name and version."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{stem.split('-')[0]}_swapped.py": b"print('not the real package')\n",
        f"{info}/METADATA": "".join(
            [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
            + [f"Requires-Dist: {r}\n" for r in requires]
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _install(
    uv: Path, tmp_path: Path, requirements: str, index: Path
) -> subprocess.CompletedProcess:
    """The image's install step (`uv pip install -r`, Dockerfile of BentoML 1.4) into a fresh
    venv, from `index` only."""
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "VIRTUAL_ENV": str(venv)}
    subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    (tmp_path / "requirements.txt").write_text(requirements)
    command = [str(uv), "pip", "install", "--offline", "--no-index", "--find-links", str(index)]
    command += ["-r", str(tmp_path / "requirements.txt")]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_a_package_swapped_on_the_index_or_left_out_of_the_lock_is_refused(
    uv, tmp_path, monkeypatch
) -> None:
    """The attack: the index (and the URL bentoml comes from) serves other files under every
    locked name and version. The image's install step refuses them, naming the package;
    with the attacker's own hashes in the lock instead, the same install passes (so the
    hashes are what refuse it), and a dependency dropped from the lock is refused too."""
    text = bento_requirements(uv, tmp_path / "bento", monkeypatch)
    lock = parse_lock(text)
    index = tmp_path / "index"
    index.mkdir()
    others = [f"{name}=={p.version}" for name, p in lock.packages.items() if name != "bentoml"]
    digests: dict[str, str] = {}
    for name, package in lock.packages.items():
        wheel = _fake_wheel(index, name, package.version, others if name == "bentoml" else [])
        digests[name] = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        if package.url:  # the file at bentoml's URL swapped as well
            text = text.replace(package.url, wheel.as_uri())

    refused = _install(uv, tmp_path / "swapped", text, index)
    assert refused.returncode != 0
    named = re.search(r"Hash mismatch for `([\w.-]+)", refused.stderr)
    assert named and named.group(1).lower().replace("_", "-") in lock.packages, refused.stderr

    attackers = text
    for name, package in lock.packages.items():
        for digest in package.hashes:
            attackers = attackers.replace(digest, digests[name])
    accepted = _install(uv, tmp_path / "rehashed", attackers, index)
    assert accepted.returncode == 0, accepted.stderr

    dropped = re.sub(r"^numpy==.*?(?=^\S)", "", attackers, flags=re.M | re.S)
    assert "numpy==" not in dropped
    missing = _install(uv, tmp_path / "dropped", dropped, index)
    assert missing.returncode != 0 and "no trusted hash was provided for: `numpy`" in missing.stderr
