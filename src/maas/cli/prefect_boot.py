"""Prefect's temporary server, started while the pipeline's libraries import.

Without `PREFECT_API_URL`, the first flow call starts a temporary Prefect server (a uvicorn
process) and waits for it: 5-10 s of every `maas run` on 2 cores, spent after torch, MLflow
and Great Expectations have been imported in this process. Started from a thread at the top of
the command, the server boots in its own process while this one imports; `wait()` joins the
thread before the flow runs (Prefect's `SubprocessASGIServer` is one instance per process, and
marks itself running before it is healthy, so the flow must not start first). Nothing changes
where a server is configured, or when the temporary one is turned off; a failed early start is
left to the flow's own start, which then says why.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

log = logging.getLogger(__name__)


class EarlyServer:
    """`EarlyServer.start()` at the top of a command; `wait()` before its first flow call."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls) -> EarlyServer:
        """Prefect is imported here, in the calling thread (two threads importing it at once
        trip the import lock's deadlock detection); the thread only starts the process."""
        early = cls()
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

        if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            return early
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        early._thread = threading.Thread(
            target=_boot, args=(server,), name="prefect-boot", daemon=True
        )
        early._thread.start()
        return early

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _boot(server: SubprocessASGIServer) -> None:
    try:
        server.start()
    except Exception as error:  # the flow starts it again, and reports a real failure
        log.debug("early start of Prefect's temporary server failed: %s", error)
