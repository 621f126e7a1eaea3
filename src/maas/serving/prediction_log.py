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
the line is dropped and counted on `/metrics` (`maas_prediction_log_lost_total`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import logging.handlers
import os
import socket
import uuid
from pathlib import Path
from typing import Any

DIR_ENV = "MAAS_PREDICTION_LOG_DIR"  # where the deploy target mounts the model's log folder
MAX_BYTES_ENV = "MAAS_PREDICTION_LOG_MAX_BYTES"
BACKUPS_ENV = "MAAS_PREDICTION_LOG_BACKUPS"
SUFFIX = ".jsonl"


class _Handler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that counts what it could not write instead of printing a trace."""

    def __init__(self, path: Path, max_bytes: int, backups: int, on_loss: Any) -> None:
        # delay: the file is opened at the first write, so an unwritable folder is a counted
        # loss at request time, not a service that fails to start
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, delay=True)
        self.terminator = "\n"
        self.on_loss = on_loss
        self.size = 0  # characters in the current file (rotation)

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
        return line

    def handleError(self, record: logging.LogRecord) -> None:
        if self.stream is not None:  # a half-written line may sit in the buffer: drop it
            with contextlib.suppress(OSError):
                self.stream.close()
            self.stream = None
        self.on_loss()


class PredictionLog:
    """One serving process's writer. `write` never raises."""

    def __init__(self, folder: Path, model: str, version: str, max_bytes: int, backups: int):
        self.model = model
        self.version = version
        self.written = 0
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
        lost = self.lost
        try:
            self._handler.handle(record)  # rotation, the write and the flush (errors counted)
        except Exception:  # the handler reports its own errors; anything else is a loss too
            self._lose()
        if self.lost == lost:
            self.written += 1

    def _lose(self) -> None:
        self.lost += 1
        if self._counter is not None:
            self._counter.inc()

    def close(self) -> None:
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
