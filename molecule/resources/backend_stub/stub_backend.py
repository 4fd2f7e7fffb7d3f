#!/usr/bin/env python3
"""A stand-in app instance for the balancer-only scenarios: it speaks the health contract's
readiness endpoint and reports what it received, so tests can see which instance answered and
which headers the balancer sent. The whole-stack scenarios use the real inventory service.

Readiness answers 503 while /run/stub-backend/<port>.down exists, so a test can take it out.
"""

import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
INSTANCE = f"{socket.gethostname()}:{PORT}"
DOWN_FLAG = f"/run/stub-backend/{PORT}.down"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Instance", INSTANCE)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/health/readiness"):
            if os.path.exists(DOWN_FLAG):
                self._send(503, {"status": "not_ready", "reason": "down flag set"})
            else:
                self._send(200, {"status": "ready", "version": "stub"})
            return
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.partition("=")[2] or 1))
        filler = "x" * 2048 if self.path.startswith("/large") else ""
        self._send(200, {"instance": INSTANCE, "path": self.path, "headers": dict(self.headers), "filler": filler})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._send(200, {"instance": INSTANCE, "path": self.path, "method": "POST"})

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
