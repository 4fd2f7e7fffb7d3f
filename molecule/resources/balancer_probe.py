"""The live balancer's server state, as JSON lines on stdout: {"raw": what the balancer says} or
{"error": why it could not be read}, every INTERVAL seconds until stdin closes or LIMIT seconds have
passed, and at least once. The stack tests (test_upgrade.py) run it on the lb host, one process for a
whole deploy instead of an exec per sample; they parse "raw" themselves.

    python3 -c "$(cat balancer_probe.py)" KIND INTERVAL LIMIT

What is read: HAProxy's runtime state (`show servers state app` on its admin socket), Apache's
balancer-manager page, the config file nginx was last reloaded with.
"""

import json
import socket
import sys
import threading
import time
import urllib.request

HAPROXY_SOCKET = "/run/haproxy/admin.sock"
APACHE_MANAGER = "http://127.0.0.1:8081/balancer-manager?b=rollgate"
NGINX_CONFIG = "/etc/nginx/nginx.conf"


def read(kind: str) -> str:
    if kind == "haproxy":
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(HAPROXY_SOCKET)
            admin.sendall(b"show servers state app\n")
            return admin.makefile().read()
    if kind == "apache":
        with urllib.request.urlopen(APACHE_MANAGER, timeout=5) as page:
            return page.read().decode()
    with open(NGINX_CONFIG, encoding="utf-8") as config:
        return config.read()


def main() -> None:
    kind, interval, limit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    closed = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    deadline = time.monotonic() + limit
    while True:
        try:
            line = {"raw": read(kind)}
        except OSError as error:
            line = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(line), flush=True)
        if closed.wait(interval) or time.monotonic() >= deadline:
            return


main()
