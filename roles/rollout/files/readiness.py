#!/usr/bin/python3
"""Print, as JSON, the readiness of app instances: {NAME: {"ready", "status", "version", "reason"}}.

Usage: readiness.py NAME=URL [NAME=URL ...]

Every URL (an instance's /health/readiness) is asked once, all at once, each within 3 seconds, so a
survey of a large fleet costs one round trip. An instance counts as ready only on 200 with status ready.
"""

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

TIMEOUT_SECONDS = 3


def probe(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read(65536)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(65536)
    except (OSError, ValueError) as error:
        return {"ready": False, "status": None, "version": None, "reason": f"no answer: {error}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    ready = status == 200 and body.get("status") == "ready"
    reason = None if ready else body.get("reason") or f"HTTP {status}"
    return {"ready": ready, "status": status, "version": body.get("version"), "reason": reason}


def main() -> int:
    targets = dict(argument.split("=", 1) for argument in sys.argv[1:])
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(targets)))) as pool:
        results = dict(zip(targets, pool.map(probe, targets.values())))
    json.dump(results, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
