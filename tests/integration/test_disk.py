"""`.maas/` on a full or read-only disk: a clear error naming the file, nothing corrupted.

Real file systems: a tiny tmpfs, filled up, and a read-only one (needs root to mount; CI
runs as root — elsewhere these skip, saying why).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from maas.audit import AuditTrail
from maas.config import RegistryParams, load_params
from maas.errors import AuditError, DeployError
from maas.operate.deployment import Deployment, read_deployment, write_state
from tests.helpers import ROOT, missing

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        missing("tmpfs", f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder`, leaving about `leave` bytes."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(free - leave, 0))
    return filler


def deployment(version: str, pad: int = 0) -> Deployment:
    return Deployment(
        model="m",
        version=version,
        image="img" + "x" * pad,
        container="c",
        port=4000,
        endpoint="http://127.0.0.1:3000",
        deployed_at="now",
    )


def test_full_disk_keeps_audit_trail_and_deploy_state_whole(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "maas", "size=64k") as disk:
        params = load_params(ROOT / "params.yaml", [f"deploy.audit_log={disk / 'audit.jsonl'}"])
        AuditTrail.of(params).record("deployed", "1", reason="first")
        write_state(disk / "local.json", deployment("1"))
        fill(disk, leave=0)
        with pytest.raises(AuditError, match=r"audit\.jsonl: No space left on device"):
            AuditTrail.of(params).record("deployed", "2", reason="r" * 5000)
        with pytest.raises(DeployError, match=r"local\.json: No space left on device"):
            write_state(disk / "local.json", deployment("2", pad=20000))
        # nothing half-written: the trail parses, the previous state stands, no leftovers
        assert [(e["event"], e["version"]) for e in AuditTrail.of(params).read()] == [
            ("deployed", "1")
        ]
        assert read_deployment(disk, "local", "m").version == "1"
        assert not (disk / "local.partial").exists()


def test_read_only_disk_is_named(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as disk:
        params = load_params(ROOT / "params.yaml", [f"deploy.audit_log={disk / 'audit.jsonl'}"])
        with pytest.raises(AuditError, match="Read-only file system"):
            AuditTrail.of(params).record("deployed", "1")
        with pytest.raises(DeployError, match="Read-only file system"):
            write_state(disk / "local.json", deployment("1"))


def test_registry_on_a_full_disk_fails_clearly_and_stays_consistent(tmp_path, small_params):
    """Registration into the embedded SQLite store when the disk fills: an error, no
    half-registered version, and the database passes SQLite's integrity check."""
    from maas.pipeline.register import serving_requirements
    from maas.tracking.registry import register_version
    from maas.tracking.runs import start_pipeline_run
    from maas.tracking.store import connect
    from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS, make_flights, write_tiny_model

    frame = make_flights(300, month=12, seed=3)
    models = write_tiny_model(tmp_path / "models", small_params, frame)
    with tmpfs(tmp_path / "store", "size=4m") as disk:
        registry = RegistryParams(
            tracking_uri=f"sqlite:///{disk / 'mlflow.db'}",
            artifact_root=disk / "artifacts",
            model_name="full",
            experiment="full",
        )
        client = connect(registry)
        tracking = start_pipeline_run(registry, {"p": 1}, "digest")
        filler = fill(disk, leave=16 * 1024)
        with pytest.raises(Exception) as raised:  # MLflow or the OS: both name the cause
            register_version(
                client,
                registry,
                tracking.run_id,
                models,
                {"k": "v"},
                frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].head(20),
                serving_requirements(),
            )
        assert disk_full(raised.value), repr(raised.value)
        filler.unlink()
        with sqlite3.connect(disk / "mlflow.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = db.execute("SELECT version, status FROM model_versions").fetchall()
        assert all(status == "READY" for _, status in rows), rows  # none half-registered
        print(
            f"full disk: {type(raised.value).__name__}: {str(raised.value)[:160]}; "
            f"versions after: {rows}"
        )


def disk_full(error: BaseException) -> bool:
    """The error, or one in its chain, is the full disk itself: ENOSPC from the OS or SQLite's
    own "database or disk is full" (not any message that happens to contain "full")."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        text = str(seen).lower()
        if "no space left on device" in text or "database or disk is full" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def test_promote_says_the_alias_moved_when_the_audit_trail_cannot_be_written(
    tmp_path, small_params
) -> None:
    """`maas promote` on a read-only `.maas/`: exit 1, and the message says the promotion
    itself happened (the alias moved) and that only its audit line is missing."""
    from typer.testing import CliRunner

    from maas.cli import app
    from maas.pipeline.register import serving_requirements
    from maas.tracking.registry import get_alias_version, register_version
    from maas.tracking.runs import start_pipeline_run
    from maas.tracking.store import connect
    from tests.helpers import RECORD_FIELDS, WEATHER_FIELDS, make_flights, write_tiny_model

    frame = make_flights(300, month=12, seed=3)
    models = write_tiny_model(tmp_path / "models", small_params, frame)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = RegistryParams(
        tracking_uri=store,
        artifact_root=tmp_path / "artifacts",
        model_name="ro-audit",
        experiment="ro",
    )
    client = connect(registry)
    tracking = start_pipeline_run(registry, {"p": 1}, "digest")
    register_version(
        client,
        registry,
        tracking.run_id,
        models,
        {"k": "v"},
        frame[[*RECORD_FIELDS, *WEATHER_FIELDS]].head(20),
        serving_requirements(),
    )
    with tmpfs(tmp_path / "ro", "ro,size=64k") as disk:
        sets = [
            f"registry.tracking_uri={store}",
            f"registry.artifact_root={registry.artifact_root}",
            "registry.model_name=ro-audit",
            f"deploy.audit_log={disk / 'audit.jsonl'}",
        ]
        flags = [arg for item in sets for arg in ("--set", item)]
        result = CliRunner().invoke(app, ["promote", "1", "-p", str(ROOT / "params.yaml"), *flags])
    assert result.exit_code == 1, result.output
    assert "champion -> v1 is set, but not in the audit trail" in " ".join(result.output.split())
    assert "Read-only file system" in result.output
    assert str(get_alias_version(connect(registry), "ro-audit", "champion").version) == "1"
