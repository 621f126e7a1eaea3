"""The prediction log: every served prediction, one JSON line per request, written by the
serving process itself into a folder the deploy target mounts (`monitoring.log_*` in params).

A line holds the request id, the model and version, the time, the request's records and the
response. Of each record only the request's declared fields and the task's key and time columns
(`monitoring` in params: e.g. a flight's number and date, kept for joining late labels) are
logged (`maas.serving.log_policy`); any other field a client sends is dropped, and a field
the task file redacts (`monitoring.redact`) is dropped or logged as its sha256. Files are
created 0640.

Rotation and retention follow `logging.handlers.RotatingFileHandler`'s rule and names: a file
rolls over before a line would take it past `max_bytes`, and the newest `backups` rolled-over
files are kept as `<file>.1` ... `<file>.<backups>`. With `retention_days`, a file also rolls
over once a day (or once per retention period, if shorter), and at each roll-over and start a
writer deletes the folder's log files last written longer ago than the retention period: no
line outlives it by more than a day. The writer is its own few lines rather than
that handler: the logging machinery's dozen Python calls per line cost 13 µs a request inside
the service (3 µs in a tight loop: the service's work between requests leaves them cold).
Each serving process writes its own file (`<host>-<pid>.jsonl`: replicas and workers share
the folder, never a file). A write that fails (full disk, a folder that is gone or read-only)
never fails the prediction: the lines are dropped and counted on `/metrics`
(`maas_prediction_log_lost_total`).

Lines are buffered and reach the file at least every `FLUSH_S` (a thread flushes an idle
writer), not with one system call per request: that call was most of the log's cost. A
process killed hard loses at most that last second, which the reader sees as a torn line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel

from maas.serving.log_policy import LogPolicy

DIR_ENV = "MAAS_PREDICTION_LOG_DIR"  # where the deploy target mounts the model's log folder
MAX_BYTES_ENV = "MAAS_PREDICTION_LOG_MAX_BYTES"
BACKUPS_ENV = "MAAS_PREDICTION_LOG_BACKUPS"
KEYS_ENV = "MAAS_PREDICTION_LOG_KEYS"  # comma-separated record fields kept beside the request's
REDACT_ENV = "MAAS_PREDICTION_LOG_REDACT"  # JSON {field: "drop" | "hash"}
RETENTION_ENV = "MAAS_PREDICTION_LOG_RETENTION_DAYS"
FILE_MODE = 0o640
DAY_S = 86_400.0
SWEEP_S = 60.0  # the shortest time between two retention sweeps of one writer
MOUNT = "/var/lib/maas/predictions"  # where deploy targets mount a model's log folder
SUFFIX = ".jsonl"
FLUSH_S = 1.0  # the longest a written line waits in the buffer
BUFFER_BYTES = 64 << 10


def environment(
    max_bytes: int,
    backups: int,
    folder: str = MOUNT,
    *,
    keys: Collection[str] = (),
    redact: Mapping[str, str] | None = None,
    retention_days: float | None = None,
) -> dict[str, str]:
    """What a deploy target sets in a container for the service to log into `folder`."""
    env = {DIR_ENV: folder, MAX_BYTES_ENV: str(max_bytes), BACKUPS_ENV: str(backups)}
    env[KEYS_ENV] = ",".join(keys)
    env[REDACT_ENV] = json.dumps(dict(redact or {}), sort_keys=True)
    if retention_days is not None:
        env[RETENTION_ENV] = str(retention_days)
    return env


class _RotatingFile:
    """Appends lines (bytes) to `path` through a buffer, rolls it over at `max_bytes` keeping
    `backups` files, and counts the lines it could not write instead of raising."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        on_loss: Callable[[int], None],
        retention_s: float | None = None,
    ) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.on_loss = on_loss
        self.retention_s = retention_s  # files last written longer ago are deleted
        # with a retention, the current file rolls over at least this often
        self.roll_s = min(DAY_S, retention_s) if retention_s else math.inf
        self.roll_at = math.inf  # (monotonic) set when the file opens
        self.swept_at = -math.inf  # (monotonic) the last retention sweep
        self.lock = threading.Lock()  # the request path and the flushing thread
        self.file: BinaryIO | None = None  # opened at the first write: an unwritable folder
        self.size = 0  # bytes in the current file      is a counted loss, not a failed start
        self.pending = 0  # lines in the buffer since the last flush
        self.written = 0  # lines that reached the file
        self.flushed_at = 0.0

    def write(self, line: bytes) -> None:
        with self.lock:
            try:
                if self.file is None:
                    self.file = self._open()
                now = time.monotonic()
                if self.size and (self.size + len(line) > self.max_bytes or now >= self.roll_at):
                    self._roll_over()
                assert self.file is not None
                self.file.write(line)
            except (OSError, ValueError):
                self._fail(extra=1)  # this line, and the buffered ones
                return
            self.size += len(line)
            self.pending += 1
            if time.monotonic() - self.flushed_at >= FLUSH_S:
                try:
                    self._flush()
                except (OSError, ValueError):
                    self._fail()

    def flush(self) -> None:
        with self.lock:
            try:
                self._flush()
            except (OSError, ValueError):
                self._fail()

    def close(self) -> None:
        self.flush()
        with self.lock, contextlib.suppress(OSError, ValueError):
            if self.file is not None:
                self.file.close()
            self.file = None

    def _open(self) -> BinaryIO:
        """Append to the file; a torn last line (a process killed mid-write, e.g. the one this
        restarted container replaced: same host name, same pid) is ended first, so it cannot
        swallow the first new line."""
        self._sweep()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        with contextlib.suppress(OSError):  # not its owner: the mode its owner gave it
            os.fchmod(descriptor, FILE_MODE)  # also a file an older writer made 0644
        file = os.fdopen(descriptor, "ab", buffering=BUFFER_BYTES)
        file.seek(0, os.SEEK_END)
        self.size = file.tell()
        self.roll_at = time.monotonic() + self.roll_s
        if self.size > 0:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    self.size += file.write(b"\n")
        return file

    def _flush(self) -> None:
        if self.file is not None and self.pending:
            self.file.flush()
        self.written += self.pending
        self.pending = 0
        self.flushed_at = time.monotonic()

    def _roll_over(self) -> None:
        """The current file becomes `.1` (`.1` becomes `.2`, ...; the oldest beyond `backups`
        goes), and a new one starts."""
        self._flush()  # the lines in the buffer belong to the file being rolled over
        assert self.file is not None
        self.file.close()
        self.file = None
        if self.backups > 0:
            for number in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
            if self.path.exists():  # else removed by a retention sweep: nothing to keep
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.file = self._open()

    def _sweep(self) -> None:
        """Delete the folder's log files (any process's) last written before the retention
        period; never the file being opened."""
        if self.retention_s is None or time.monotonic() - self.swept_at < SWEEP_S:
            return  # at most once a minute: a failing disk reopens the file at every write
        self.swept_at = time.monotonic()
        oldest = time.time() - self.retention_s
        with contextlib.suppress(OSError):
            for path in self.path.parent.iterdir():
                if SUFFIX not in path.name or path == self.path:
                    continue
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < oldest:
                        path.unlink()

    def _fail(self, extra: int = 0) -> None:
        """The buffered lines go with the file: counted, and the next write opens it again."""
        lost, self.pending = self.pending + extra, 0
        if self.file is not None:
            with contextlib.suppress(OSError, ValueError):
                self.file.close()  # flushing again fails the same way: the buffer is dropped
            self.file = None
        if lost:
            self.on_loss(lost)


class PredictionLog:
    """One serving process's writer. `write` never raises."""

    def __init__(
        self,
        folder: Path,
        model: str,
        version: str,
        max_bytes: int,
        backups: int,
        *,
        policy: LogPolicy | None = None,
        retention_days: float | None = None,
    ):
        """`policy`: what of a request is logged (None: the request as sent, for tools that
        write a log of their own making; the service always passes one)."""
        self.model = model
        self.policy = policy
        self.version = version
        self.lost = 0
        self.path = Path(folder) / f"{socket.gethostname()}-{os.getpid()}{SUFFIX}"
        prefix = f'"model":{json.dumps(model)},"version":{json.dumps(version)},"request":'
        self._prefix = prefix.encode()
        self._id = f"{uuid.uuid4().hex[:16]}-"  # request ids: this process's prefix + a counter
        self._sequence = 0
        self._counter = _loss_counter()
        with contextlib.suppress(OSError):  # else the first write counts the loss
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        retention_s = retention_days * DAY_S if retention_days else None
        self._file = _RotatingFile(self.path, max_bytes, backups, self._lose, retention_s)
        self._closed = threading.Event()
        threading.Thread(target=self._flush_idle, name="prediction-log", daemon=True).start()

    @classmethod
    def from_env(
        cls, model: str, version: str, body_key: str, fields: Collection[str]
    ) -> PredictionLog | None:
        """The log the deploy target asked for ($MAAS_PREDICTION_LOG_DIR), or None (off):
        `fields`, the request's declared fields, and the keys and redactions it names."""
        folder = os.environ.get(DIR_ENV)
        if not folder:
            return None
        max_bytes = int(os.environ.get(MAX_BYTES_ENV) or 64 << 20)
        backups = int(os.environ.get(BACKUPS_ENV) or 8)
        keys = [name for name in os.environ.get(KEYS_ENV, "").split(",") if name]
        redact = json.loads(os.environ.get(REDACT_ENV) or "{}")
        retention = os.environ.get(RETENTION_ENV)
        policy = LogPolicy(body_key, frozenset(fields), frozenset(keys), redact)
        return cls(
            Path(folder),
            model,
            version,
            max_bytes,
            backups,
            policy=policy,
            retention_days=float(retention) if retention else None,
        )

    def write(
        self, request: bytes, response: bytes, records: list[BaseModel] | None = None
    ) -> None:
        """Log one request and its response (both JSON documents, as bytes); `records`: what
        the service validated out of the request, which the policy logs without parsing the
        request again (`LogPolicy.logged`)."""
        try:
            self._sequence += 1
            if self.policy is None:
                logged = _one_line(request)
            elif records is None:
                logged = self.policy.filtered(request)
            else:
                logged = self.policy.logged(records, request)
            head = (
                f'{{"time":"{dt.datetime.now(dt.UTC).isoformat()}",'
                f'"request_id":"{self._id}{self._sequence}",'
            )
            line = b"".join(
                (
                    head.encode(),
                    self._prefix,
                    logged,
                    b',"response":',
                    _one_line(response),
                    b"}\n",
                )
            )
            self._file.write(line)  # rotation, the write, a flush now and then
        except Exception:  # the file reports its own errors; anything else is a loss too
            self._lose(1)

    @property
    def written(self) -> int:
        """Lines that reached the file (buffered ones count once flushed)."""
        return self._file.written

    def _flush_idle(self) -> None:
        while not self._closed.wait(FLUSH_S):
            self.flush()

    def flush(self) -> None:
        self._file.flush()

    def _lose(self, lines: int) -> None:
        self.lost += lines
        if self._counter is not None:
            self._counter.inc(lines)

    def close(self) -> None:
        self._closed.set()
        self._file.close()


def _one_line(document: bytes) -> bytes:
    """JSON allows raw newlines only as whitespace between tokens: a space keeps the line one."""
    if b"\n" in document or b"\r" in document:
        return document.replace(b"\r", b" ").replace(b"\n", b" ")
    return document


def _loss_counter() -> Any:
    """A Prometheus counter on the service's /metrics (None outside a BentoML server)."""
    try:
        import bentoml
    except ImportError:  # pragma: no cover - the serving image always has it
        return None
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = bentoml.metrics.Counter(
            name="maas_prediction_log_lost",
            documentation="Predictions served but not written to the prediction log",
        )
    return _COUNTER


_COUNTER: Any = None
