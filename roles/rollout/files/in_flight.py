#!/usr/bin/python3
"""Wait until no app instance has a request in flight, then print, as JSON, what each had last.

Usage: in_flight.py TIMEOUT NAME=URL [NAME=URL ...]

Every URL (an instance's /health/metrics) is asked every second, all at once, until each reports at
most one active connection (the metrics request itself), or until TIMEOUT seconds have passed. The
output is {"seconds": S, "busy": {NAME: ACTIVE, ...}, "unreadable": {NAME: WHAT_IT_GOT, ...}}:

- busy lists the instances still serving when time ran out. That is not an error: stopping an
  instance lets it finish what it has anyway (for the app's DRAIN_TIMEOUT); the wait only spares those
  requests the stop.
- unreadable lists the instances whose count could not be read: no answer, an HTTP error (a 403 from
  the metrics allowlist, a 404 from a wrong path), or a body that is not the app's metrics. They are
  not asked again, and they are never counted as idle here: a wrong URL must not turn the wait off
  without a word. The caller asks systemd about them; only a stopped or failed instance is idle.

It exits 0 whatever it found, and 2 on bad arguments.
"""

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

REQUEST_TIMEOUT_SECONDS = 3
INTERVAL_SECONDS = 1.0
BODY_LIMIT = 65536


def read_active(url: str):
    """(requests in flight other than this one, None), or (None, what was got instead)."""
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            raw = response.read(BODY_LIMIT)
    except urllib.error.HTTPError as error:
        return None, f"HTTP {error.code} from {url}"
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, f"no answer from {url}: {reason}"
    try:
        metrics = json.loads(raw)
    except ValueError:
        metrics = None
    active = metrics.get("active_connections") if isinstance(metrics, dict) else None
    if isinstance(active, bool) or not isinstance(active, (int, float)):
        excerpt = raw[:80].decode("utf-8", "replace")
        return None, f"no active_connections in the answer of {url}: {excerpt!r}"
    # The metrics request itself is one of the active connections.
    return max(0, int(active) - 1), None


def parse_targets(arguments):
    targets = {}
    for argument in arguments:
        name, separator, url = argument.partition("=")
        if not separator or not name or not url:
            raise ValueError(f"expected NAME=URL, got {argument!r}")
        targets[name] = url
    return targets


def wait_idle(timeout, targets, read=read_active, clock=time.monotonic, sleep=time.sleep):
    """Poll until every target is idle or unreadable, or until timeout; return the result dict."""
    started = clock()
    waiting = dict(targets)
    busy = {}
    unreadable = {}
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(waiting)))) as pool:
        while waiting:
            answers = dict(zip(waiting, pool.map(read, waiting.values())))
            busy = {}
            for name, (active, problem) in answers.items():
                if problem is not None:
                    unreadable[name] = problem
                elif active > 0:
                    busy[name] = active
            waiting = {name: url for name, url in waiting.items() if name in busy}
            if not waiting or clock() - started + INTERVAL_SECONDS > timeout:
                break
            sleep(INTERVAL_SECONDS)
    return {"seconds": round(clock() - started, 1), "busy": busy, "unreadable": unreadable}


def main() -> int:
    try:
        timeout = float(sys.argv[1])
        targets = parse_targets(sys.argv[2:])
    except (IndexError, ValueError) as error:
        print(f"in_flight.py: {error}; usage: in_flight.py TIMEOUT NAME=URL [NAME=URL ...]", file=sys.stderr)
        return 2
    json.dump(wait_idle(timeout, targets), sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
