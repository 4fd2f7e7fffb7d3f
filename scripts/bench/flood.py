#!/usr/bin/env python3
"""Abuse from one client address, bounded in time and requests: copied into a lab host and run there.

    flood.py requests --url http://10.89.60.10 --rate 400 --duration 20 --connections 20
    flood.py slow --host 10.89.60.10 --port 80 --connections 300 --duration 30 --interval 5

`requests`: GET /items as fast as --rate allows, spread over --connections keep-alive connections
(a scraper or a broken client in a loop). Counts the answers by status and the errors by class.

`slow`: opens --connections connections and sends a request's headers one line every --interval
seconds, never finishing them (slowloris). Counts how many connections the balancer refused, closed
(and after how long), and how many it still held open at the end.

Both print one JSON object on stdout. Standard library only (Python 3.11, the lab hosts' python3).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def flood_requests(url: str, rate: float, duration: float, connections: int, max_requests: int,
                   path: str = "/items?per_page=5", count_header: str | None = None) -> dict:
    """GET `path` over `connections` keep-alive connections at `rate` per second in all, until `duration`
    or `max_requests`; answers counted by status and, with `count_header`, the 200s by that header."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    statuses: Counter[str] = Counter()
    by_header: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    interval = connections / rate  # each connection's share of the rate
    deadline = time.monotonic() + duration
    sent = [0]

    def worker(number: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        next_due = time.monotonic() + number * interval / connections
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_due += interval
            try:
                conn.request("GET", path, headers={"Accept": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    conn.close()
                with lock:
                    statuses[str(response.status)] += 1
                    if count_header and response.status == 200:
                        by_header[response.getheader(count_header) or "(none)"] += 1
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with lock:
                    errors[type(exc).__name__] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 10)
    return {"mode": "requests", "sent": sent[0], "seconds": round(time.monotonic() - started, 1),
            "statuses": dict(sorted(statuses.items())), "errors": dict(sorted(errors.items())),
            "by_header": dict(sorted(by_header.items()))}


def flood_slow(host: str, port: int, connections: int, duration: float, interval: float) -> dict:
    opened: list[tuple[socket.socket, float]] = []
    refused: Counter[str] = Counter()
    for _ in range(connections):
        try:
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /items HTTP/1.1\r\nHost: rollgate\r\n")
            opened.append((sock, time.monotonic()))
        except OSError as exc:
            refused[type(exc).__name__] += 1
    closed_after: list[float] = []
    answered: Counter[str] = Counter()
    alive = list(opened)
    deadline = time.monotonic() + duration
    line = 0
    while alive and time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        line += 1
        still_alive = []
        for sock, opened_at in alive:
            try:
                sock.sendall(f"X-Slow-{line}: {line}\r\n".encode())
                sock.settimeout(0.01)
                try:
                    data = sock.recv(64)
                except (TimeoutError, BlockingIOError):
                    data = None
                finally:
                    sock.settimeout(5)
                if data == b"":
                    raise ConnectionResetError("closed")
                if data:
                    answered[data.split(b" ", 2)[1].decode(errors="replace") if b" " in data else "?"] += 1
                    raise ConnectionResetError("answered")
                still_alive.append((sock, opened_at))
            except OSError:
                closed_after.append(time.monotonic() - opened_at)
                sock.close()
        alive = still_alive
    for sock, _ in alive:
        sock.close()
    return {"mode": "slow", "connections": connections, "opened": len(opened), "refused": dict(refused),
            "closed_by_server": len(closed_after), "answered_before_close": dict(answered),
            "closed_after_s_median": round(statistics.median(closed_after), 1) if closed_after else None,
            "still_open_at_end": len(alive), "duration_s": duration}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    requests = modes.add_parser("requests")
    requests.add_argument("--url", required=True)
    requests.add_argument("--rate", type=float, default=400.0)
    requests.add_argument("--duration", type=float, default=20.0)
    requests.add_argument("--connections", type=int, default=20)
    requests.add_argument("--max-requests", type=int, default=20000)
    slow = modes.add_parser("slow")
    slow.add_argument("--host", required=True)
    slow.add_argument("--port", type=int, default=80)
    slow.add_argument("--connections", type=int, default=300)
    slow.add_argument("--duration", type=float, default=30.0)
    slow.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.mode == "requests":
        result = flood_requests(args.url, args.rate, args.duration, args.connections, args.max_requests)
    else:
        result = flood_slow(args.host, args.port, args.connections, args.duration, args.interval)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
