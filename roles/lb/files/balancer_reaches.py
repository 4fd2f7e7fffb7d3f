#!/usr/bin/python3
"""Send requests through the balancer until each named instance has answered one; exit 1 if the time
runs out first, naming the ones that never answered.

Usage: balancer_reaches.py URL SECONDS INSTANCE [INSTANCE ...]

An instance is known by the x-instance header the app puts on every response (<host>:<port>). The
balancer's own certificate is not verified: this runs on the balancer host against 127.0.0.1.
"""

import ssl
import sys
import time
import urllib.error
import urllib.request

PAUSE_SECONDS = 0.05  # 20 requests a second at most: well under any per-client rate limit


def answering_instance(url: str, context: ssl.SSLContext) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return response.headers.get("x-instance") if response.status == 200 else None
    except (OSError, urllib.error.HTTPError):
        return None


def main() -> int:
    url, seconds, *expected = sys.argv[1:]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    missing = set(expected)
    deadline = time.monotonic() + float(seconds)
    requests = 0
    while missing and time.monotonic() < deadline:
        requests += 1
        missing.discard(answering_instance(url, context))
        time.sleep(PAUSE_SECONDS)
    if missing:
        print(f"after {requests} requests in {seconds} s, {url} never reached {', '.join(sorted(missing))}")
        return 1
    print(f"{url} reached {', '.join(sorted(expected))} in {requests} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
