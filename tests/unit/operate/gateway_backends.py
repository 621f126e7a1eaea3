"""What the gateway tests put behind the real HAProxy: small real HTTP servers."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers import missing


def needs_haproxy() -> None:
    if shutil.which("haproxy") is None:
        missing("haproxy", "haproxy is not installed")


def backend(name: str) -> tuple[ThreadingHTTPServer, int]:
    """A keep-alive HTTP server answering POSTs with `name` (`name:<path>` off /predict)."""

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the BentoML service
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = name.encode() if self.path == "/predict" else f"{name}:{self.path}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
