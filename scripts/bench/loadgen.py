#!/usr/bin/env python3
"""Open-loop, constant-rate HTTP load against the rollgate balancer: item reads and stock movements.

    loadgen.py run --rate 50 --duration 60 --out build/bench/load.jsonl
    loadgen.py summarize build/bench/load.jsonl --marks marks.json

`run` logs in once through the balancer, makes sure the items it moves stock on exist (creating them
through the API), then schedules requests at a constant rate: request i is due at start + i/rate,
whether or not earlier ones have answered (open loop). A pool of worker threads, each with its own
keep-alive connection, sends them; latency runs from the scheduled time, so a stalled backend shows up
as latency of every request that queued behind it instead of as fewer requests (no coordinated
omission). Every request becomes one JSON line in --out: scheduled unix time, latency, kind, status,
error class and the X-Instance that answered. SIGTERM or SIGINT stops the scheduling; the requests
already due are sent and answered (for at most --drain-timeout s), then the file is written.

The app rate-limits per client address (RATE_LIMIT_PER_MINUTE, GCRA with a burst of the same size)
and takes the address from X-Forwarded-For only when the peer is a trusted balancer: every request of
this generator therefore counts against one address, the one the balancer sees. `run` reads the
limit from the login response and warns when --rate is above it.

`summarize` (importable: summarize(records, start, end)) counts requests, failures (connection errors,
resets, timeouts, 5xx), 429 and other 4xx, p50/p99 latency and requests per instance, for the whole
file or per window between the times of a marks file ({"name": unix_time, ...}).

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import queue
import random
import select
import signal
import ssl
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("loadgen")

REPO_ROOT = Path(__file__).resolve().parents[2]
# None: the lab's admin password, read from its vault (scripts/lab_vault.py).
DEFAULT_PASSWORD_FILE = None

SESSION_COOKIE = "rollgate_session"
CSRF_HEADER = "X-CSRF-Token"
INSTANCE_HEADER = "x-instance"

# Error classes a record can carry. The first four make a request "failed": the user saw no answer
# or a server error. 429 and other 4xx are answers the client caused, counted apart.
FAILURE_CLASSES = ("connect", "reset", "timeout", "5xx", "other")
REJECTION_CLASSES = ("429", "4xx")
# A request still queued when the drain ran out of time: the generator's limit, not the server's.
UNSENT = "unsent"

# Errors that mean the server closed a kept-alive connection before reading our request: the
# classic keep-alive race (a reload, an idle timeout). Browsers and HTTP libraries resend then. Over TLS the
# same close can surface as the TLS layer's EOF, before the HTTP layer sees it.
STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                           ConnectionAbortedError, ssl.SSLEOFError)


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


@dataclass(frozen=True)
class Target:
    """The balancer's base URL, split for http.client."""

    scheme: str
    host: str
    port: int
    verify_tls: bool = False

    @classmethod
    def from_url(cls, url: str, verify_tls: bool = False) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url must be http://HOST[:PORT] or https://HOST[:PORT], got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, verify_tls)

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new, not yet connected, connection (the lab's certificate is self-signed: no check by default)."""
        if self.scheme == "https":
            context = ssl.create_default_context() if self.verify_tls else ssl._create_unverified_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def exchange(conn: http.client.HTTPConnection, method: str, path: str,
             body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    """One request on ``conn``; closes it when the server said it would (Connection: close)."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    if response.will_close:
        conn.close()
    return Answer(response.status, response.headers, payload)


def json_request(target: Target, method: str, path: str, payload: Any = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
    """One request on a connection of its own: for set-up, not for the measured load."""
    conn = target.connection(timeout)
    try:
        all_headers = {"Accept": "application/json", **(headers or {})}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
        return exchange(conn, method, path, body, all_headers)
    finally:
        conn.close()


def session_cookie(headers: http.client.HTTPMessage) -> str | None:
    """The session id from the login's Set-Cookie (sent back on plain HTTP too, even if marked Secure)."""
    for value in headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        if name.strip() == SESSION_COOKIE:
            return rest.split(";", 1)[0].strip()
    return None


# ---------------------------------------------------------------------------------------------
# Session and items


class SharedSession:
    """One login shared by every worker: the cookie and its CSRF token.

    The app keeps sessions in Redis, so any instance accepts them. A login that carries a session cookie
    destroys that session, so a re-login here never sends the old cookie: the other workers keep using
    it until they pick up the new one.
    """

    def __init__(self, target: Target, username: str, password: str, timeout: float) -> None:
        self._target = target
        self._username = username
        self._password = password
        self._timeout = timeout
        self._lock = threading.Lock()
        self.cookie = ""
        self.csrf_token = ""
        self.generation = 0
        self.rate_limit_per_minute: int | None = None

    def login(self, attempts: int = 10) -> None:
        """Log in, waiting out 429 (login is rate limited like the rest) and start-up 503s."""
        last_problem = ""
        for _ in range(attempts):
            try:
                answer = json_request(self._target, "POST", "/auth/login",
                                      {"username": self._username, "password": self._password},
                                      timeout=self._timeout)
            except OSError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                time.sleep(1)
                continue
            if answer.status == 200:
                cookie = session_cookie(answer.headers)
                if not cookie:
                    raise RuntimeError("login answered 200 without a rollgate_session cookie")
                self.cookie = cookie
                self.csrf_token = answer.json()["csrf_token"]
                limit = answer.headers.get("x-ratelimit-limit")
                self.rate_limit_per_minute = int(limit) if limit and limit.isdigit() else None
                self.generation += 1
                return
            if answer.status in (401, 422):
                raise RuntimeError(f"login as {self._username!r} refused ({answer.status}): {answer.body[:200]!r}")
            last_problem = f"HTTP {answer.status}"
            time.sleep(min(float(answer.headers.get("Retry-After", "1") or 1), 5.0))
        raise RuntimeError(f"could not log in through {self._target.host}:{self._target.port}: {last_problem}")

    def refresh(self, seen_generation: int) -> None:
        """Log in again, once for all the workers that saw the same stale session."""
        with self._lock:
            if self.generation == seen_generation:
                self.login(attempts=3)

    def write_headers(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.cookie}", CSRF_HEADER: self.csrf_token}


def ensure_items(target: Target, session: SharedSession, prefix: str, count: int, timeout: float) -> list[int]:
    """The ids of ``count`` items whose SKU starts with ``prefix``, creating the missing ones."""
    def existing() -> dict[str, int]:
        answer = json_request(target, "GET", f"/items?q={prefix}&per_page=100", timeout=timeout)
        if answer.status != 200:
            raise RuntimeError(f"GET /items answered {answer.status}: {answer.body[:200]!r}")
        return {item["sku"]: item["id"] for item in answer.json()["data"] if item["sku"].startswith(prefix)}

    items = existing()
    for number in range(1, count + 1):
        sku = f"{prefix}{number:03d}"
        if sku in items:
            continue
        answer = json_request(target, "POST", "/items", {
            "sku": sku, "name": f"load generator item {number}", "quantity": 1_000_000,
            "location": "bench", "unit_price": "1.00"}, headers=session.write_headers(), timeout=timeout)
        if answer.status == 201:
            items[sku] = answer.json()["id"]
        elif answer.status == 409:  # made meanwhile by another generator
            items = existing()
        else:
            raise RuntimeError(f"POST /items answered {answer.status}: {answer.body[:200]!r}")
    return sorted(items[sku] for sku in sorted(items)[:count])


# ---------------------------------------------------------------------------------------------
# The load


@dataclass(frozen=True)
class Due:
    """A request the scheduler made due: its index and its scheduled time (wall and monotonic)."""

    index: int
    unix: float
    monotonic: float


@dataclass(frozen=True)
class Plan:
    kind: str  # read or write
    op: str  # list, get, receive, ship
    method: str
    path: str
    payload: dict[str, Any] | None = None


# The classes of request a record's "kind" names; summaries count failures per class.
REQUEST_KINDS = ("read", "write", "health")


def plan_request(rng: random.Random, write_ratio: float, item_ids: Sequence[int], prefix: str,
                 health_ratio: float = 0.0) -> Plan:
    """With probability write_ratio a movement of 1, with probability health_ratio a GET /health, else a
    read that touches the database (the item list or one item, evenly)."""
    item_id = rng.choice(item_ids)
    draw = rng.random()
    if draw < write_ratio:
        op = rng.choice(("receive", "ship"))
        return Plan("write", op, "POST", f"/items/{item_id}/{op}", {"quantity": 1, "reason": "loadgen"})
    if draw < write_ratio + health_ratio:
        return Plan("health", "health", "GET", "/health")
    if rng.random() < 0.5:
        return Plan("read", "list", "GET", f"/items?q={prefix}&per_page=20")
    return Plan("read", "get", "GET", f"/items/{item_id}")


def classify_status(status: int) -> str | None:
    if status >= 500:
        return "5xx"
    if status == 429:
        return "429"
    if status >= 400:
        return "4xx"
    return None


def classify_exception(exc: BaseException) -> str:
    """The error class of a request that got no answer (the connect phase is classified apart)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, (*STALE_CONNECTION_ERRORS, http.client.IncompleteRead)):
        return "reset"
    return "other"


class ConnectFailed(Exception):
    """Opening the connection (TCP or TLS) failed."""


def connection_dropped(sock: Any) -> bool:
    """Whether a kept-alive connection is no use any more: readable while idle means the server closed it
    (or sent what no request asked for). HTTP client pools check this before reusing a connection
    (urllib3's is_connection_dropped); it is not a resend, since the request was never sent."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@dataclass
class LoadSettings:
    rate: float
    duration: float
    max_requests: int
    workers: int
    timeout: float
    write_ratio: float
    drain_timeout: float
    retry_stale: bool
    item_prefix: str
    seed: int | None = None
    health_ratio: float = 0.0
    # Seconds a request that got no answer (a refused or timed-out connect, a reset, a timeout) is sent again,
    # on a new connection, after a short backoff (retry_backoff); 0: never (see Worker.send).
    retry_failed: float = 0.0


def retry_backoff(attempt: int) -> float:
    """The pause before the attempt-th resend of a request that got no answer: 0.1 s, doubling, at most 1 s
    (a client's usual exponential backoff, short: a failover takes about a second)."""
    return min(0.1 * 2 ** (attempt - 1), 1.0)


class Worker(threading.Thread):
    """Takes due requests off the queue and sends them on its own keep-alive connection."""

    def __init__(self, number: int, target: Target, session: SharedSession, item_ids: Sequence[int],
                 due_requests: queue.Queue[Due | None], settings: LoadSettings) -> None:
        super().__init__(name=f"worker-{number}", daemon=True)
        self.target = target
        self.session = session
        self.item_ids = item_ids
        self.due_requests = due_requests
        self.settings = settings
        seed = None if settings.seed is None else settings.seed * 1000 + number
        self.rng = random.Random(seed)
        self.conn: http.client.HTTPConnection | None = None
        self.records: list[dict[str, Any]] = []

    def run(self) -> None:
        while True:
            due = self.due_requests.get()
            if due is None:
                break
            self.records.append(self.send(due))
        if self.conn is not None:
            self.conn.close()

    def _drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _attempt(self, plan: Plan, headers: dict[str, str], body: bytes | None) -> Answer:
        if self.conn is None:
            self.conn = self.target.connection(self.settings.timeout)
        if self.conn.sock is None:
            try:
                self.conn.connect()
            except OSError as exc:
                raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        return exchange(self.conn, plan.method, plan.path, body, headers)

    def _pause_before_retry(self, record: dict[str, Any], failure: tuple[str, str],
                            retry_until: float | None) -> float | None:
        """With retry_failed, after `failure` (its class and detail): pause for the backoff and return the time
        (monotonic) until which the request is sent again, or None when it is not (no retry, or the window is
        over). The client that retries, as HTTP clients do for idempotent requests: every request here is one
        (reads, GET /health, and writes with an Idempotency-Key, whose movement the app applies once and replays).
        A 5xx is an answer and is never retried. The first failure stays in the record (first_error,
        first_detail): what a client that does not retry would have seen."""
        if self.settings.retry_failed <= 0:
            return None
        now = time.monotonic()
        if retry_until is None:
            record.update(first_error=failure[0], first_detail=failure[1], attempts=1)
            retry_until = now + self.settings.retry_failed
        if now >= retry_until:
            return None
        time.sleep(min(retry_backoff(record["attempts"]), retry_until - now))
        record["attempts"] += 1
        return retry_until

    def send(self, due: Due) -> dict[str, Any]:
        plan = plan_request(self.rng, self.settings.write_ratio, self.item_ids, self.settings.item_prefix,
                            self.settings.health_ratio)
        headers = {"Accept": "application/json"}
        body = None
        session_generation = self.session.generation
        if plan.kind == "write":
            headers.update(self.session.write_headers())
            headers["Content-Type"] = "application/json"
            # A resent movement (below) is applied once: the app replays the first outcome.
            headers["Idempotency-Key"] = uuid.uuid4().hex
            body = json.dumps(plan.payload).encode()
        record: dict[str, Any] = {"t": round(due.unix, 6), "kind": plan.kind, "op": plan.op,
                                  "status": None, "error": None, "instance": None, "retried": False}
        if plan.kind == "write":
            # An audit matches the movements stored in the database with the keys the client sent.
            record["key"] = headers["Idempotency-Key"]
        send_started = time.monotonic()
        record["queue_ms"] = round((send_started - due.monotonic) * 1000, 3)
        if self.conn is not None and self.conn.sock is not None and connection_dropped(self.conn.sock):
            # Closed by the server while idle: a new connection before the request, as client pools do.
            self._drop_connection()
            record["reconnected"] = True
        retry_until: float | None = None
        while True:
            reused = self.conn is not None and self.conn.sock is not None
            try:
                answer = self._attempt(plan, headers, body)
            except ConnectFailed as exc:
                self._drop_connection()
                failure = ("connect", str(exc))
            except STALE_CONNECTION_ERRORS as exc:
                self._drop_connection()
                if reused and self.settings.retry_stale and not record["retried"]:
                    record.update(retried=True, retry_detail=f"{type(exc).__name__}: {exc}")
                    continue
                failure = (classify_exception(exc), f"{type(exc).__name__}: {exc}")
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = (classify_exception(exc), f"{type(exc).__name__}: {exc}")
            else:
                record.update(status=answer.status, error=classify_status(answer.status),
                              instance=answer.headers.get(INSTANCE_HEADER))
                if plan.kind == "write" and answer.status in (401, 403):
                    self.session.refresh(session_generation)
                break
            retry_until = self._pause_before_retry(record, failure, retry_until)
            if retry_until is not None:
                continue
            record.update(error=failure[0], detail=failure[1])
            break
        record["latency_ms"] = round((time.monotonic() - due.monotonic) * 1000, 3)
        return record


class StopFlag:
    """Set by SIGTERM/SIGINT: the scheduler stops making requests due."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()


def generate_load(target: Target, session: SharedSession, item_ids: Sequence[int], settings: LoadSettings,
                  stop: StopFlag, on_start: Any = None) -> list[dict[str, Any]]:
    """Run the load until --duration, --max-requests or a signal; return the records by scheduled time."""
    due_requests: queue.Queue[Due | None] = queue.Queue()
    workers = [Worker(n, target, session, item_ids, due_requests, settings) for n in range(settings.workers)]
    for worker in workers:
        worker.start()

    interval = 1.0 / settings.rate
    start_monotonic = time.monotonic() + 0.1
    # Rounded as the records are, so that a window starting at the announced time holds request 0.
    start_unix = round(time.time() + 0.1, 6)
    if on_start:
        on_start(start_unix)
    index = 0
    while index < settings.max_requests and not stop.event.is_set():
        offset = index * interval
        if offset >= settings.duration:
            break
        delay = start_monotonic + offset - time.monotonic()
        if delay > 0 and stop.event.wait(delay):
            break
        due_requests.put(Due(index, start_unix + offset, start_monotonic + offset))
        index += 1
    scheduled = index
    log.info("stopped scheduling after %d requests (%s); draining", scheduled,
             f"signal {stop.signal_name}" if stop.signal_name else "limit reached")

    for _ in workers:
        due_requests.put(None)
    drain_deadline = time.monotonic() + settings.drain_timeout
    for worker in workers:
        worker.join(max(0.0, drain_deadline - time.monotonic()))
    records = [record for worker in workers for record in list(worker.records)]

    # Whatever is still queued was due but never sent before the drain ran out of time.
    while True:
        try:
            due = due_requests.get_nowait()
        except queue.Empty:
            break
        if due is not None:
            records.append({"t": round(due.unix, 6), "kind": None, "op": None, "status": None,
                            "error": UNSENT, "instance": None, "retried": False, "queue_ms": None,
                            "latency_ms": None})
    in_flight = scheduled - len(records)
    if in_flight:
        log.warning("%d requests were still in flight when the drain timed out: left out of the file", in_flight)
    records.sort(key=lambda record: record["t"])
    return records


def write_records(records: Iterable[dict[str, Any]], path: Path) -> None:
    """JSON lines, written to a temporary file and renamed, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    os.replace(partial, path)


def read_records(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------
# Summaries


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(records: Iterable[dict[str, Any]], start: float | None = None,
              end: float | None = None) -> dict[str, Any]:
    """Figures of the records scheduled in [start, end): counts, failures, latency, instances.

    ``failed`` counts the requests that got no answer (connect, reset, timeout, other) or a 5xx;
    429 and other 4xx are answers, counted under ``rejected``. Latencies cover every sent request,
    failed ones included (a timeout weighs its full wait).
    """
    window = [r for r in records
              if (start is None or r["t"] >= start) and (end is None or r["t"] < end)]
    sent = [r for r in window if r["error"] != UNSENT]
    failures = [r for r in sent if r["error"] in FAILURE_CLASSES]
    latencies = sorted(r["latency_ms"] for r in sent)
    span_start = start if start is not None else (window[0]["t"] if window else None)
    span_end = end if end is not None else (window[-1]["t"] if window else None)
    span = (span_end - span_start) if span_start is not None and span_end is not None else 0.0

    def p(fraction: float) -> float | None:
        value = percentile(latencies, fraction)
        return None if value is None else round(value, 1)

    return {
        "start": span_start,
        "end": span_end,
        "requests": len(sent),
        "rate_per_s": round(len(sent) / span, 1) if span > 0 else None,
        "ok": sum(1 for r in sent if r["error"] is None),
        "failed": len(failures),
        "failed_by_class": {name: sum(1 for r in failures if r["error"] == name) for name in FAILURE_CLASSES},
        "failed_by_kind": {kind: sum(1 for r in failures if r["kind"] == kind) for kind in REQUEST_KINDS},
        "requests_by_kind": {kind: sum(1 for r in sent if r["kind"] == kind) for kind in REQUEST_KINDS},
        "rejected": {name: sum(1 for r in sent if r["error"] == name) for name in REJECTION_CLASSES},
        "retried_stale_connection": sum(1 for r in sent if r.get("retried")),
        # With retry_failed: the requests sent again after a failure, and those that got their answer so; a
        # client that does not retry would have seen failed + recovered_by_retry fail.
        "retried_after_failure": sum(1 for r in sent if r.get("first_error")),
        "recovered_by_retry": sum(1 for r in sent if r.get("first_error") and r["error"] not in FAILURE_CLASSES),
        "reconnected_before_sending": sum(1 for r in sent if r.get("reconnected")),
        "unsent": len(window) - len(sent),
        "p50_ms": p(0.50),
        "p99_ms": p(0.99),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "statuses": dict(sorted(Counter(str(r["status"]) for r in sent if r["status"] is not None).items())),
        # Answers without X-Instance came from the balancer itself (its own 502/503/429).
        "per_instance": dict(sorted(Counter(r["instance"] or "(balancer)" for r in sent
                                            if r["status"] is not None).items())),
    }


RETRY_FIELDS = ("first_error", "first_detail", "attempts")


def without_retry(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a client that does not retry would have seen it: its first failure, when it had one, and no
    retry (so summarize counts none)."""
    if not record.get("first_error"):
        return record
    plain = {key: value for key, value in record.items() if key not in RETRY_FIELDS}
    plain.update(error=record["first_error"], detail=record["first_detail"], status=None, instance=None)
    return plain


def windows_from_marks(marks: dict[str, float]) -> list[tuple[str, float | None, float | None]]:
    """Named windows: everything, then (when there are marks) the spans between the first record, each
    mark in time order, and the last record."""
    times = sorted((float(value), name) for name, value in marks.items() if isinstance(value, (int, float)))
    if not times:
        return [("all", None, None)]
    bounds: list[tuple[str, float | None]] = [("begin", None), *((name, value) for value, name in times), ("end", None)]
    windows: list[tuple[str, float | None, float | None]] = [("all", None, None)]
    for (first_name, first_time), (second_name, second_time) in zip(bounds, bounds[1:]):
        windows.append((f"{first_name} -> {second_name}", first_time, second_time))
    return windows


def format_summary(name: str, figures: dict[str, Any]) -> str:
    failed = figures["failed_by_class"]
    return (f"{name}: {figures['requests']} requests ({figures['rate_per_s']} /s), "
            f"failed {figures['failed']} (connect {failed['connect']}, reset {failed['reset']}, "
            f"timeout {failed['timeout']}, 5xx {failed['5xx']}, other {failed['other']}; "
            f"read {figures['failed_by_kind']['read']}, write {figures['failed_by_kind']['write']}, "
            f"health {figures['failed_by_kind']['health']}), "
            f"429 {figures['rejected']['429']}, 4xx {figures['rejected']['4xx']}, "
            f"resent {figures['retried_stale_connection']}, "
            f"retried after a failure {figures['retried_after_failure']} ({figures['recovered_by_retry']} answered), "
            f"unsent {figures['unsent']}, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; "
            f"instances {figures['per_instance']}")


# ---------------------------------------------------------------------------------------------
# Command line


def read_password(path: Path | None) -> str:
    """The admin password: ROLLGATE_ADMIN_PASSWORD, else the first word of `path`, else the lab's."""
    env_password = os.environ.get("ROLLGATE_ADMIN_PASSWORD")
    if env_password:
        return env_password
    if path is None:
        sys.path.insert(0, str(REPO_ROOT / "scripts"))
        import lab_vault  # pylint: disable=import-outside-toplevel  (scripts/lab_vault.py)

        return lab_vault.read_vault()["vault_app_admin_password"]
    try:
        words = path.read_text(encoding="utf-8").split()
    except OSError as exc:
        raise SystemExit(f"loadgen: cannot read the admin password from {path}: {exc.strerror}") from exc
    if not words:
        raise SystemExit(f"loadgen: {path} is empty")
    return words[0]  # the password lookup may append " salt=..."


def warn_about_rate_limit(limit_per_minute: int | None, rate: float) -> None:
    if not limit_per_minute or rate * 60 <= limit_per_minute:
        return
    burst_seconds = limit_per_minute / (rate - limit_per_minute / 60)
    log.warning("the app allows %d requests/min per client address, and every request of this generator "
                "counts against one address (the one the balancer sees): at %.0f req/s expect 429 after about "
                "%.0f s. Raise it for a bench: site.yml -e app_rate_limit_per_minute=N", limit_per_minute,
                rate, burst_seconds)


def command_run(args: argparse.Namespace) -> int:
    settings = LoadSettings(rate=args.rate, duration=args.duration, max_requests=args.max_requests,
                            workers=args.workers, timeout=args.timeout, write_ratio=args.write_ratio,
                            drain_timeout=args.drain_timeout, retry_stale=args.retry_stale,
                            item_prefix=args.item_prefix, seed=args.seed, health_ratio=args.health_ratio,
                            retry_failed=args.retry_failed)
    target = Target.from_url(args.url, verify_tls=args.verify_tls)
    stop = StopFlag()
    stop.install()

    session = SharedSession(target, args.username, read_password(args.password_file), args.timeout)
    try:
        session.login()
        item_ids = ensure_items(target, session, args.item_prefix, args.items, args.timeout)
    except (RuntimeError, OSError) as exc:
        log.error("set-up failed: %s", exc)
        return 1
    log.info("logged in; %d items (%s...); %.1f req/s, %.0f%% writes, %d workers, at most %.0f s or %d requests",
             len(item_ids), args.item_prefix, settings.rate, settings.write_ratio * 100, settings.workers,
             settings.duration, settings.max_requests)
    warn_about_rate_limit(session.rate_limit_per_minute, settings.rate)

    def announce(start_unix: float) -> None:
        # One line on stdout for a driver waiting for the load to begin.
        print(json.dumps({"event": "started", "time": start_unix}), flush=True)

    records = generate_load(target, session, item_ids, settings, stop, on_start=announce)
    write_records(records, args.out)
    figures = summarize(records)
    log.info("%s", format_summary("all", figures))
    log.info("wrote %d records to %s", len(records), args.out)
    print(json.dumps({"event": "finished", "records": len(records), "out": str(args.out)}), flush=True)
    return 0


def command_summarize(args: argparse.Namespace) -> int:
    records = read_records(args.file)
    marks: dict[str, float] = {}
    if args.marks:
        marks = json.loads(args.marks.read_text(encoding="utf-8"))
    results = {}
    for name, start, end in windows_from_marks(marks):
        figures = summarize(records, start, end)
        if not figures["requests"] and name != "all":
            continue
        results[name] = figures
        if not args.json:
            print(format_summary(name, figures))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value
    return parse


def ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate the load and write the records")
    run.add_argument("--url", default="http://127.0.0.1:8080", help="the balancer (default: %(default)s)")
    run.add_argument("--verify-tls", action="store_true", help="check the balancer's certificate (https)")
    run.add_argument("--rate", type=positive(float), default=50.0, help="requests per second (default: %(default)s)")
    run.add_argument("--duration", type=positive(float), default=60.0,
                     help="seconds of scheduling at most (default: %(default)s)")
    run.add_argument("--max-requests", type=positive(int), default=1_000_000,
                     help="requests at most (default: %(default)s)")
    run.add_argument("--workers", type=positive(int), default=40,
                     help="threads, one keep-alive connection each; stay below the balancer's "
                          "connections per client, 100 (default: %(default)s)")
    run.add_argument("--timeout", type=positive(float), default=5.0,
                     help="seconds per connect and per read of a request (default: %(default)s)")
    run.add_argument("--write-ratio", type=ratio, default=0.2,
                     help="share of stock movements; the rest are reads (default: %(default)s)")
    run.add_argument("--health-ratio", type=ratio, default=0.0,
                     help="share of GET /health among the requests (default: %(default)s)")
    run.add_argument("--drain-timeout", type=positive(float), default=None,
                     help="seconds to finish the due requests after the stop (default: --timeout + --retry-failed + 5)")
    run.add_argument("--no-retry-stale", dest="retry_stale", action="store_false",
                     help="count a kept-alive connection the server closed before our request as a reset "
                          "instead of resending once on a new connection")
    run.add_argument("--retry-failed", type=float, default=0.0, metavar="SECONDS",
                     help="send a request that got no answer (connect refused or timed out, reset, timeout) "
                          "again, on a new connection, with a backoff of 0.1 s doubling to 1 s, for up to SECONDS "
                          "after its first failure, as a client that retries idempotent requests does; every "
                          "request here is one (writes carry an Idempotency-Key). 5xx answers are not retried. "
                          "The summary counts what a client that does not retry would have seen (default: 0, never)")
    run.add_argument("--items", type=positive(int), default=10, help="items to spread the load over (default: %(default)s)")
    run.add_argument("--item-prefix", default="loadgen-", help="SKU prefix of those items (default: %(default)s)")
    run.add_argument("--username", default="admin", help="login (default: %(default)s)")
    run.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE,
                     help="file holding the password; ROLLGATE_ADMIN_PASSWORD overrides (default: the lab's, from its vault)")
    run.add_argument("--seed", type=int, default=None, help="seed of the request mix (default: random)")
    run.add_argument("--out", type=Path, required=True, help="JSON lines file of the records")
    run.set_defaults(handler=command_run)

    summary = commands.add_parser("summarize", help="figures of a records file, per window of a marks file")
    summary.add_argument("file", type=Path, help="JSON lines written by run")
    summary.add_argument("--marks", type=Path, help='JSON object {"name": unix_time, ...} splitting the time')
    summary.add_argument("--json", action="store_true", help="print the figures as JSON")
    summary.set_defaults(handler=command_summarize)

    args = parser.parse_args(argv)
    if args.command == "run" and args.write_ratio + args.health_ratio > 1:
        parser.error(f"--write-ratio {args.write_ratio} and --health-ratio {args.health_ratio} add up to more than 1")
    if args.command == "run" and args.drain_timeout is None:
        args.drain_timeout = args.timeout + max(args.retry_failed, 0.0) + 5.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="loadgen: %(message)s")
    args = parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
