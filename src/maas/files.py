"""Files written so that a crash, a full disk or a read-only disk never leaves half of one
(atomic replacement, whole-line appends), secrets created once with owner-only access, and
locks shared between processes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path


def required_secret(path: Path, env: str, error: type[Exception]) -> str:
    """`read_or_create_secret`, refusing a blank $`env` or an empty file with `error` (an
    HMAC with an empty key signs anything)."""
    if env in os.environ and not os.environ[env].strip():
        raise error(f"${env} is blank: unset it or set a secret")
    value = read_or_create_secret(path, env=env)
    if not value:
        raise error(f"{path} is empty: delete it (a new secret is made) or fill it")
    return value


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a sibling path to write; on success it replaces `path` in one step.

    A reader never sees half a file, and a failed or killed write leaves the previous file as
    it was (the partial file is removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Replace `path` with `text` atomically; `durable` also fsyncs before the switch."""
    with replacing(path) as partial, partial.open("w") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def append_line(path: Path, line: str) -> None:
    """Append one whole line or nothing: on a short or failed write (disk full) the file is
    cut back to its previous length. Raises OSError (its strerror says why)."""
    data = (line + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        try:
            if os.write(descriptor, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(descriptor)
        except OSError:
            os.ftruncate(descriptor, size)
            raise
    finally:
        os.close(descriptor)


def read_or_create_secret(
    path: Path, env: str | None = None, generate: Callable[[], str] | None = None
) -> str:
    """$`env` when set; else the file's content; else a new value (default: 32 random bytes,
    URL-safe) written once with mode 0600 (O_EXCL: two processes never write two secrets)."""
    if env and os.environ.get(env):
        return os.environ[env]
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate() if generate is not None else secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process: use that one
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    return value


@contextlib.contextmanager
def locked(path: Path, wait: bool = True) -> Iterator[None]:
    """An exclusive lock on `path` across processes (fcntl), held for the block. With
    wait=False a lock held elsewhere raises BlockingIOError at once instead of queueing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_home() -> Path:
    """maas's per-user cache ($MAAS_CACHE_DIR, else ~/.cache/maas): the base image's tarball,
    the champion locks."""
    return Path(os.environ.get("MAAS_CACHE_DIR", Path.home() / ".cache" / "maas"))
