"""scripts/bench/loadgen.py's retrying client (--retry-failed): a request that got no answer is sent again on a
new connection, and the record keeps what a client that does not retry would have seen. Against a real HTTP
server on 127.0.0.1 that is not there yet, answers 503, or closes the connection without an answer."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Imported as a module of its folder: its dataclasses need it in sys.modules.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "bench"))
import loadgen  # noqa: E402  pylint: disable=wrong-import-position


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        with server.lock:
            server.seen += 1
            number = server.seen
        if number <= server.drop_first:
            # Read the request, then close without a byte of answer: a reset to the client.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(server.status)
        self.send_header("Content-Length", "2")
        self.send_header("X-Instance", "app1:8001")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class Server:
    """An HTTP server on `port` answering every GET with `status`, the first `drop_first` requests closed
    unanswered; started `after` seconds from now (until then, connects are refused)."""

    def __init__(self, port: int, status: int = 200, drop_first: int = 0, after: float = 0.0) -> None:
        self.port, self.status, self.drop_first, self.after = port, status, drop_first, after
        self.httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> "Server":
        def serve() -> None:
            time.sleep(self.after)
            self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
            self.httpd.status, self.httpd.drop_first = self.status, self.drop_first
            self.httpd.seen, self.httpd.lock = 0, threading.Lock()
            self.httpd.serve_forever(poll_interval=0.05)

        threading.Thread(target=serve, daemon=True).start()
        if not self.after:
            while self.httpd is None:
                time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        deadline = time.monotonic() + 5
        while self.httpd is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def port() -> int:
    """A port of 127.0.0.1 nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoSession:
    """GET /health needs no session: only the generation the worker reads before sending."""

    generation = 0


def send_one(port: int, retry_failed: float) -> dict:
    settings = loadgen.LoadSettings(rate=1, duration=1, max_requests=1, workers=1, timeout=2.0, write_ratio=0.0,
                                    drain_timeout=5.0, retry_stale=True, item_prefix="t-", health_ratio=1.0,
                                    retry_failed=retry_failed)
    worker = loadgen.Worker(0, loadgen.Target("http", "127.0.0.1", port), _NoSession(), [1], None, settings)
    worker.rng = random.Random(1)
    record = worker.send(loadgen.Due(0, time.time(), time.monotonic()))
    worker._drop_connection()
    return record


def test_the_backoff_doubles_from_a_tenth_of_a_second_to_one_second():
    assert [loadgen.retry_backoff(attempt) for attempt in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_refused_connect_is_retried_until_the_server_answers(port):
    with Server(port, after=0.6):
        record = send_one(port, retry_failed=5.0)
    assert record["error"] is None and record["status"] == 200, record
    assert record["first_error"] == "connect" and record["attempts"] >= 3, record


def test_without_the_retry_a_refused_connect_fails(port):
    """The negative control of the test above: the same server, a client that does not retry."""
    with Server(port, after=0.6):
        record = send_one(port, retry_failed=0.0)
    assert record["error"] == "connect" and "first_error" not in record, record


def test_the_retry_gives_up_after_its_window(port):
    started = time.monotonic()
    record = send_one(port, retry_failed=0.5)
    assert record["error"] == "connect" and record["first_error"] == "connect", record
    assert 0.5 <= time.monotonic() - started < 2.0


def test_a_request_closed_without_an_answer_is_sent_again_on_a_new_connection(port):
    """Not a stale kept-alive connection (the first request on a new one): retry_stale would not resend it."""
    with Server(port, drop_first=1):
        retried = send_one(port, retry_failed=2.0)
    with Server(port, drop_first=1):
        plain = send_one(port, retry_failed=0.0)
    assert retried["error"] is None and retried["first_error"] == "reset", retried
    assert plain["error"] == "reset", plain


def test_a_5xx_is_an_answer_and_is_not_retried(port):
    with Server(port, status=503):
        record = send_one(port, retry_failed=2.0)
    assert record["error"] == "5xx" and "first_error" not in record, record


def test_the_summary_counts_what_a_client_without_the_retry_would_have_seen():
    records = [
        {"t": 1.0, "kind": "read", "error": None, "status": 200, "instance": "a", "latency_ms": 5},
        {"t": 1.1, "kind": "read", "error": None, "status": 200, "instance": "a", "latency_ms": 900,
         "first_error": "connect", "attempts": 4},
        {"t": 1.2, "kind": "write", "error": "connect", "status": None, "instance": None, "latency_ms": 3000,
         "first_error": "connect", "attempts": 9},
    ]
    figures = loadgen.summarize(records)
    assert figures["failed"] == 1
    assert figures["retried_after_failure"] == 2 and figures["recovered_by_retry"] == 1


def test_without_retry_a_record_reads_as_its_first_failure():
    recovered = {"t": 1.0, "kind": "read", "latency_ms": 5, "error": None, "status": 200, "instance": "a",
                 "first_error": "connect", "first_detail": "ConnectionRefusedError", "attempts": 3}
    assert loadgen.without_retry(recovered)["error"] == "connect"
    assert loadgen.without_retry(recovered)["status"] is None
    assert loadgen.summarize([loadgen.without_retry(recovered)])["retried_after_failure"] == 0
    plain = {"t": 1.0, "error": None, "status": 200, "instance": "a"}
    assert loadgen.without_retry(plain) is plain
