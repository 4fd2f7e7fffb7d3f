#!/usr/bin/python3
"""Wait until no app instance has a request in flight, then print, as JSON, what each had last.

Usage: in_flight.py TIMEOUT NAME=URL [NAME=URL ...]

Every URL (an instance's /health/metrics) is asked every second, all at once, until each reports at
most one active connection (the metrics request itself) or does not answer (nothing in flight), or
until TIMEOUT seconds have passed. The output is {"seconds": S, "busy": {NAME: ACTIVE, ...}}, where
busy lists the instances still serving when time ran out; it never fails, because stopping an
instance lets it finish what it has anyway: the wait only spares those requests the stop.
"""

import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

REQUEST_TIMEOUT_SECONDS = 3
INTERVAL_SECONDS = 1.0


def active_connections(url: str) -> int:
    """The instance's active connections, less the one asking; 0 when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            metrics = json.loads(response.read(65536))
    except (OSError, ValueError):
        return 0
    active = metrics.get("active_connections", 0) if isinstance(metrics, dict) else 0
    return max(0, int(active) - 1) if isinstance(active, (int, float)) else 0


def main() -> int:
    timeout = float(sys.argv[1])
    waiting = dict(argument.split("=", 1) for argument in sys.argv[2:])
    started = time.monotonic()
    busy = {}
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(waiting)))) as pool:
        while waiting:
            busy = {name: active for name, active in zip(waiting, pool.map(active_connections, waiting.values()))
                    if active > 0}
            waiting = {name: url for name, url in waiting.items() if name in busy}
            if not waiting or time.monotonic() - started + INTERVAL_SECONDS > timeout:
                break
            time.sleep(INTERVAL_SECONDS)
    json.dump({"seconds": round(time.monotonic() - started, 1), "busy": busy}, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
