"""The prediction log: every served prediction, one JSON line per request, written by the
serving process itself into a folder the deploy target mounts (`monitoring.log_*` in params).

A line holds the request id, the model and version, the time, the request body exactly as the
client sent it (so key columns the model does not use, e.g. a flight's number and date, are
kept for joining late labels) and the response. Writing the raw bytes costs one buffer copy
per request; nothing is parsed or serialized again (docs/monitoring.md has the measured cost).

Rotation and retention are the standard library's: `logging.handlers.RotatingFileHandler`
rolls a file over at `max_bytes` and keeps `backups` rotated files. Each serving process writes
its own file (`<host>-<pid>.jsonl`: replicas and workers share the folder, never a file). A
write that fails (full disk, a folder that is gone or read-only) never fails the prediction:
the lines are dropped and counted on `/metrics` (`maas_prediction_log_lost_total`).

Lines are buffered and reach the file at least every `FLUSH_S` (a thread flushes an idle
writer), not with one system call per request: that call was most of the log's cost. A
process killed hard loses at most that last second, which the reader sees as a torn line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import logging.handlers
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIR_ENV = "MAAS_PREDICTION_LOG_DIR"  # where the deploy target mounts the model's log folder
MAX_BYTES_ENV = "MAAS_PREDICTION_LOG_MAX_BYTES"
BACKUPS_ENV = "MAAS_PREDICTION_LOG_BACKUPS"
MOUNT = "/var/lib/maas/predictions"  # where deploy targets mount a model's log folder
SUFFIX = ".jsonl"
FLUSH_S = 1.0  # the longest a written line waits in the buffer


def environment(max_bytes: int, backups: int, folder: str = MOUNT) -> dict[str, str]:
    """What a deploy target sets in a container for the service to log into `folder`."""
    return {DIR_ENV: folder, MAX_BYTES_ENV: str(max_bytes), BACKUPS_ENV: str(backups)}


class _Handler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that buffers lines, flushes at most every `FLUSH_S`, and counts what
    it could not write instead of printing a trace."""

    def __init__(
        self, path: Path, max_bytes: int, backups: int, on_loss: Callable[[int], None]
    ) -> None:
        # delay: the file is opened at the first write, so an unwritable folder is a counted
        # loss at request time, not a service that fails to start
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, delay=True)
        self.terminator = "\n"
        self.on_loss = on_loss
        self.size = 0  # characters in the current file (rotation)
        self.pending = 0  # lines written to the buffer since the last flush
        self.written = 0  # lines that reached the file
        self.flushed_at = 0.0

    def _open(self) -> Any:
        """Append to the file; a torn last line (a process killed mid-write, e.g. the one this
        restarted container replaced: same host name, same pid) is ended first, so it cannot
        swallow the first new line."""
        stream = super()._open()
        self.size = stream.tell()
        if self.size > 0:
            with open(self.baseFilename, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    self.size += stream.write("\n")
        return stream

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """The standard rule (roll over before a line would pass maxBytes), on a size this
        handler counts instead of two stat calls and a second formatting per line."""
        if self.stream is None:
            self.stream = self._open()
        return self.size > 0 and self.size + len(record.msg) + 1 > self.maxBytes > 0

    def format(self, record: logging.LogRecord) -> str:
        line: str = record.msg  # built by PredictionLog.write; formatted once per line
        self.size += len(line) + 1
        self.pending += 1
        return line

    def flush(self) -> None:
        """After each line (StreamHandler.emit): to the file only if the last flush is old."""
        if time.monotonic() - self.flushed_at >= FLUSH_S:
            self.flush_now()

    def flush_now(self) -> None:
        if self.stream is not None and self.pending:
            self.stream.flush()  # an OSError here: the caller's handleError counts the lines
        self.written += self.pending
        self.pending = 0
        self.flushed_at = time.monotonic()

    def doRollover(self) -> None:
        self.flush_now()  # the lines in the buffer belong to the file being rolled over
        super().doRollover()

    def handleError(self, record: logging.LogRecord | None) -> None:
        lost, self.pending = max(self.pending, 1), 0  # the buffered lines go with the stream
        if self.stream is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.close()
            self.stream = None
        self.on_loss(lost)


class PredictionLog:
    """One serving process's writer. `write` never raises."""

    def __init__(self, folder: Path, model: str, version: str, max_bytes: int, backups: int):
        self.model = model
        self.version = version
        self.lost = 0
        self.path = Path(folder) / f"{socket.gethostname()}-{os.getpid()}{SUFFIX}"
        self._prefix = f'"model":{json.dumps(model)},"version":{json.dumps(version)},"request":'
        self._id = f"{uuid.uuid4().hex[:16]}-"  # request ids: this process's prefix + a counter
        self._sequence = 0
        self._record = logging.LogRecord("maas.predictions", logging.INFO, "", 0, "", None, None)
        self._counter = _loss_counter()
        with contextlib.suppress(OSError):  # else the first write counts the loss
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = _Handler(self.path, max_bytes, backups, self._lose)
        self._closed = threading.Event()
        threading.Thread(target=self._flush_idle, name="prediction-log", daemon=True).start()

    @classmethod
    def from_env(cls, model: str, version: str) -> PredictionLog | None:
        """The log the deploy target asked for ($MAAS_PREDICTION_LOG_DIR), or None (off)."""
        folder = os.environ.get(DIR_ENV)
        if not folder:
            return None
        max_bytes = int(os.environ.get(MAX_BYTES_ENV) or 64 << 20)
        backups = int(os.environ.get(BACKUPS_ENV) or 8)
        return cls(Path(folder), model, version, max_bytes, backups)

    def write(self, request: bytes, response: bytes) -> None:
        """Log one request and its response (both JSON documents, as bytes)."""
        self._sequence += 1
        # JSON allows raw newlines only as whitespace between tokens: a space keeps the line one
        record = self._record  # one record reused: writes happen one at a time (the lock)
        record.msg = (
            f'{{"time":"{dt.datetime.now(dt.UTC).isoformat()}",'
            f'"request_id":"{self._id}{self._sequence}",{self._prefix}'
            f'{_one_line(request)},"response":{_one_line(response)}}}'
        )
        try:
            self._handler.handle(record)  # rotation, the write, a flush now and then
        except Exception:  # the handler reports its own errors; anything else is a loss too
            self._lose(1)

    @property
    def written(self) -> int:
        """Lines that reached the file (buffered ones count once flushed)."""
        return self._handler.written

    def _flush_idle(self) -> None:
        while not self._closed.wait(FLUSH_S):
            self.flush()

    def flush(self) -> None:
        with self._handler.lock:  # type: ignore[union-attr]
            try:
                self._handler.flush_now()
            except Exception:
                self._handler.handleError(None)

    def _lose(self, lines: int) -> None:
        self.lost += lines
        if self._counter is not None:
            self._counter.inc(lines)

    def close(self) -> None:
        self._closed.set()
        self.flush()
        self._handler.close()


def _one_line(document: bytes) -> str:
    text = document.decode("utf-8", "replace")
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


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
