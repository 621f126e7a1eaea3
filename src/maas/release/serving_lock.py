"""The serving image's Python packages, each pinned by version and sha256 (docs/security.md,
item 12): `maas/serving/requirements.lock`, which bentofile.yaml names as its
`python.requirements_txt`, made from `maas/serving/requirements.in` and the bentoml installed
here by `make lock-serving` (`python -m maas.release.serving_lock`).

The lock opens with `--require-hashes`, so the image's `uv pip install` refuses any file whose
sha256 is not listed and any package the lock does not name. bentoml is named by the URL of its
wheel on PyPI: BentoML adds its own unhashed `bentoml==` line to the image's requirements
unless they already name bentoml by URL, and one unhashed line fails hash-checking mode.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from maas.errors import PackagingError
from maas.files import cache_home
from maas.release.base_image import uv_binary
from maas.tracking.serving_code import SRC_DIR

LOCK = SRC_DIR / "maas/serving/requirements.lock"
DECLARED = SRC_DIR / "maas/serving/requirements.in"
# the image's interpreter and platform: Debian bookworm's CPython on x86_64
PYTHON = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
REQUIRE_HASHES = "--require-hashes"
HEADER = f"""\
# The serving image's Python packages, each pinned by version and sha256 (docs/security.md,
# item 12), for CPython {PYTHON} on {PLATFORM} (the image's). Made by `make lock-serving`
# from requirements.in and the bentoml installed there: do not edit, change requirements.in
# and run it again. bentoml is named by its wheel's URL so that BentoML adds no unhashed
# `bentoml==` line of its own."""


@dataclass(frozen=True)
class Locked:
    """One requirement of a lock: the package, its exact version and its allowed sha256s."""

    name: str  # canonical
    version: str
    hashes: tuple[str, ...]
    url: str | None = None


@dataclass(frozen=True)
class Lock:
    require_hashes: bool
    packages: dict[str, Locked]
    problems: tuple[str, ...]  # lines that pin no exact version or list no hash


def _logical_lines(text: str) -> list[str]:
    """Requirement lines with their `\\` continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip()]


def parse_lock(text: str) -> Lock:
    """A lock's requirements; a line that pins no exact version or has no hash is a problem."""
    packages: dict[str, Locked] = {}
    problems: list[str] = []
    require_hashes = False
    for line in _logical_lines(text):
        if line.startswith("#"):
            continue
        if line == REQUIRE_HASHES:
            require_hashes = True
            continue
        spec, *options = (part.strip() for part in re.split(r"\s--", line))
        hashes = tuple(o.split("=", 1)[1] for o in options if o.startswith("hash=sha256:"))
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            problems.append(f"`{spec}` is not a requirement")
            continue
        name = canonicalize_name(requirement.name)
        version = _pinned_version(requirement)
        if version is None:
            problems.append(f"{name} is not pinned to one version (`{spec}`)")
            continue
        if not hashes:
            problems.append(f"{name}=={version} has no sha256")
        packages[name] = Locked(name, version, hashes, requirement.url)
    return Lock(require_hashes, packages, tuple(problems))


def _pinned_version(requirement: Requirement) -> str | None:
    if requirement.url:
        try:
            return str(parse_wheel_filename(requirement.url.rsplit("/", 1)[-1])[1])
        except ValueError:
            return None
    specs = list(requirement.specifier)
    if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
        return specs[0].version
    return None


def declared_requirements(path: Path = DECLARED) -> list[Requirement]:
    return [Requirement(line) for line in _logical_lines(path.read_text()) if line[0] != "#"]


def lock_problems(text: str, declared: list[Requirement], bentoml_version: str) -> list[str]:
    """Why the lock `text` would not pin the image by hash, or is stale against the declared
    ranges and the installed bentoml; empty when it is fine."""
    lock = parse_lock(text)
    problems = list(lock.problems)
    if not lock.require_hashes:
        problems.append(f"{REQUIRE_HASHES} is missing: the image would install unhashed files")
    for requirement in declared:
        locked = lock.packages.get(canonicalize_name(requirement.name))
        if locked is None:
            problems.append(f"{requirement.name} is declared but not locked")
        elif not requirement.specifier.contains(locked.version, prereleases=True):
            problems.append(f"{locked.name}=={locked.version} is outside declared {requirement}")
    bentoml = lock.packages.get("bentoml")
    if bentoml is None or bentoml.url is None:
        problems.append("bentoml is not locked by URL: BentoML would add an unhashed line")
    elif bentoml.version != bentoml_version:
        problems.append(f"bentoml {bentoml.version} is locked, {bentoml_version} is installed")
    return [f"{problem} (run `make lock-serving`)" for problem in problems]


def render(pylock: dict[str, Any]) -> str:
    """The lock's text from a PEP 751 `pylock.toml` (what `uv pip compile` resolved)."""
    lines = [HEADER, REQUIRE_HASHES]
    for package in sorted(pylock["packages"], key=lambda p: str(p["name"])):
        name, version = canonicalize_name(package["name"]), package["version"]
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        if name == "bentoml":
            wheels = package.get("wheels", [])
            if len(wheels) != 1:
                raise PackagingError(f"bentoml {version} has {len(wheels)} wheels, not one")
            files, head = wheels, f"bentoml @ {wheels[0]['url']}{marker}"
        else:
            head = f"{name}=={version}{marker}"
        hashes = sorted({f["hashes"]["sha256"] for f in files})
        if not hashes:
            raise PackagingError(f"{name}=={version} came without a sha256")
        lines.append(" \\\n".join([head, *(f"    --hash=sha256:{h}" for h in hashes)]))
    return "\n".join(lines) + "\n"


def compile_lock(uv: Path, declared: Path, bentoml_version: str) -> str:
    """Resolve the declared packages and this bentoml for the image, with every file's sha256
    (the index is uv's default, PyPI: where the image build gets them)."""
    with tempfile.TemporaryDirectory(prefix="maas-lock-") as tmp:
        source, out = Path(tmp) / "requirements.in", Path(tmp) / "pylock.toml"
        source.write_text(f"{declared.read_text()}\nbentoml=={bentoml_version}\n")
        command = [str(uv), "pip", "compile", str(source), "--generate-hashes", "--quiet"]
        command += ["--format", "pylock.toml", "--output-file", str(out), "--no-header"]
        command += ["--python-version", PYTHON, "--python-platform", PLATFORM]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise PackagingError(f"uv pip compile failed: {tail}")
        return render(tomllib.loads(out.read_text()))


def write_lock(lock: Path = LOCK, declared: Path = DECLARED) -> str:
    """`make lock-serving`: the lock written anew, checked before it replaces the old one."""
    bentoml_version = importlib.metadata.version("bentoml")
    with tempfile.TemporaryDirectory(prefix="maas-uv-") as tmp:
        uv = uv_binary(cache_home() / "base" / "wheels", Path(tmp))
        text = compile_lock(uv, declared, bentoml_version)
    problems = lock_problems(text, declared_requirements(declared), bentoml_version)
    if problems:
        raise PackagingError(f"the new lock is not usable: {'; '.join(problems)}")
    partial = lock.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(lock)
    return text


if __name__ == "__main__":
    written = parse_lock(write_lock())
    print(f"{LOCK}: {len(written.packages)} packages, each pinned by sha256", file=sys.stderr)
