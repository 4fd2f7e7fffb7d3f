"""The live balancer's server state, as JSON lines on stdout: {"raw": what the balancer says} or
{"error": why it could not be read}, every INTERVAL seconds until stdin closes or LIMIT seconds have
passed, and at least once. The stack tests (test_upgrade.py) run it on the lb host, one process for a
whole deploy instead of an exec per sample; they parse "raw" themselves (testlib.parse_weights).

    python3 -c "$(cat balancer_probe.py)" KIND INTERVAL LIMIT

What is read: HAProxy's runtime state (`show servers state app` on its admin socket), Apache's
balancer-manager page. Open-source nginx exposes no upstream state, so for nginx what it serves is
counted: GETs through it on 127.0.0.1:443, NGINX_RATE a second for INTERVAL seconds (NGINX_WINDOW for one
sample), each answer's X-Instance counted. With them go the server lines of its config (their names and
total weight, which shares alone cannot give) and whether the window was steady (nginx_served): a window
across a reload mixes two states, and one between the config's write and its reload shows the old one.
"""

import http.client
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.request

HAPROXY_SOCKET = "/run/haproxy/admin.sock"
APACHE_MANAGER = "http://127.0.0.1:8081/balancer-manager?b=rollgate"
NGINX_CONFIG = "/etc/nginx/nginx.conf"
NGINX_PID_FILE = "/run/nginx.pid"
NGINX_PORT = 443
NGINX_PATH = "/health/liveness"
# Under the balancer's per-client rate (lb_rate_limit_per_second, 100), so that no answer is a 429.
NGINX_RATE = 60
NGINX_WINDOW = 2.0
NGINX_SERVER_LINE = re.compile(r"^\s*server\s+\S+\s+weight=.*$", re.M)


class Client:
    """One kept-alive HTTPS connection through nginx; a new one after any error (a reload closes it)."""

    def __init__(self) -> None:
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.connection = None

    def instance(self):
        """The X-Instance of one 200 answer, else None."""
        try:
            if self.connection is None:
                self.connection = http.client.HTTPSConnection("127.0.0.1", NGINX_PORT, context=self.context, timeout=5)
            self.connection.request("GET", NGINX_PATH)
            response = self.connection.getresponse()
            response.read()
            if response.will_close:
                self.close()
            return response.getheader("X-Instance") if response.status == 200 else None
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def nginx_state():
    """(the config's server lines, nginx's worker PIDs, whether every worker started after the config was
    last written). The rollout writes the config, checks it, then reloads: until the reload, nginx serves
    the old one, and during it old workers finish their connections beside new ones."""
    with open(NGINX_CONFIG, encoding="utf-8") as config:
        servers = NGINX_SERVER_LINE.findall(config.read())
        written = os.fstat(config.fileno()).st_mtime
    with open(NGINX_PID_FILE, encoding="utf-8") as pid_file:
        master = pid_file.read().strip()
    with open("/proc/stat", encoding="utf-8") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    ticks = os.sysconf("SC_CLK_TCK")
    workers = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # from the process state on: state, parent, ...
        except OSError:
            continue  # gone since listed
        if fields[1] == master:
            workers[int(entry)] = boot + int(fields[19]) / ticks  # its start time
    return servers, sorted(workers), bool(workers) and min(workers.values()) > written


def nginx_served(client: Client, seconds: float) -> str:
    """What nginx serves for `seconds`: steady only if its config and workers were the same at both ends
    of the window and every worker was started after the config was written, so it serves that config."""
    before = nginx_state()
    answers: dict[str, int] = {}
    start, sent = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        instance = client.instance()
        sent += 1
        if instance:
            host, _, port = instance.rpartition(":")
            answers[f"{host}_{port}"] = answers.get(f"{host}_{port}", 0) + 1
        pause = start + sent / NGINX_RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    after = nginx_state()
    return json.dumps({"servers": "\n".join(after[0]), "answers": answers, "sent": sent,
                       "steady": before == after and after[2]})


def read(kind: str, interval: float, client: Client) -> str:
    if kind == "haproxy":
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(HAPROXY_SOCKET)
            admin.sendall(b"show servers state app\n")
            return admin.makefile().read()
    if kind == "apache":
        with urllib.request.urlopen(APACHE_MANAGER, timeout=5) as page:
            return page.read().decode()
    return nginx_served(client, interval or NGINX_WINDOW)


def main() -> None:
    kind, interval, limit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    closed = threading.Event()
    client = Client()

    def wait_for_eof() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    deadline = time.monotonic() + limit
    while True:
        try:
            line = {"raw": read(kind, interval, client)}
        except OSError as error:
            line = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(line), flush=True)
        # nginx's sample takes the interval itself.
        if closed.wait(0 if kind == "nginx" else interval) or time.monotonic() >= deadline:
            return


main()
