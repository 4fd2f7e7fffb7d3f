#!/usr/bin/python3
"""Print a table of every app instance: version, readiness, the balancer's weight and state for it, and
the key figures of its /health/metrics. Runs on the balancer host (allowed to read /health/metrics).

Usage: fleet_status.py SETTINGS_JSON
SETTINGS_JSON: {"kind": "nginx|haproxy|apache", "instances": [{"name", "address", "port", "weight"}],
                "haproxy_socket", "haproxy_backend", "nginx_conf", "apache_manager", "apache_balancer"}
"""

import json
import re
import socket
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser


def fetch_json(url: str) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status, raw = response.status, response.read(262144)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(262144)
    except (OSError, ValueError) as error:
        return None, {"error": str(error)}
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def instance_view(instance: dict) -> dict:
    address = instance["address"]
    base = f"http://{'[' + address + ']' if ':' in address else address}:{instance['port']}"
    status, readiness = fetch_json(base + "/health/readiness")
    _, metrics = fetch_json(base + "/health/metrics")
    ready = status == 200 and readiness.get("status") == "ready"
    return {
        "version": readiness.get("version", "?"),
        "ready": "yes" if ready else f"NO ({readiness.get('reason') or readiness.get('error') or status})",
        # The metrics request itself is one of them.
        "in_flight": metrics["active_connections"] - 1 if "active_connections" in metrics else "?",
        "rpm": metrics.get("requests_per_minute", "?"),
        "p99_ms": (metrics.get("response_time") or {}).get("p99_ms", "?"),
        "err_pct": metrics.get("error_rate_percent", "?"),
        "db": "{in_use}/{max}".format(**metrics["database_connections"]) if "database_connections" in metrics else "?",
    }


def haproxy_view(settings: dict) -> dict:
    """{server: (weight, status)} from the runtime API's `show stat`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(3)
        connection.connect(settings["haproxy_socket"])
        connection.sendall(b"show stat\n")
        raw = b""
        while chunk := connection.recv(65536):
            raw += chunk
    lines = raw.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    view = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == settings["haproxy_backend"] and row.get("svname") not in ("FRONTEND", "BACKEND"):
            view[row["svname"]] = (row.get("weight", "?"), row.get("status", "?"))
    return view


def nginx_view(settings: dict) -> dict:
    """{address:port: (weight, state)} from the server lines of the live nginx.conf."""
    view = {}
    with open(settings["nginx_conf"], encoding="utf-8") as conf:
        for line in conf:
            match = re.match(r"\s*server\s+(\S+)\s+([^;]*);", line)
            if match and "weight=" in match.group(2):
                weight = re.search(r"weight=(\d+)", match.group(2)).group(1)
                view[match.group(1)] = (weight, "drained (down)" if re.search(r"\bdown\b", match.group(2)) else "in rotation")
    return view


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):  # noqa: ANN001 - HTMLParser's signature
        if tag == "tr":
            self.rows.append([])
        elif tag == "td" and self.rows:
            self.rows[-1].append("")
            self._in_cell = True

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data):  # noqa: ANN001
        if self._in_cell and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def apache_view(settings: dict) -> dict:
    """{route: (factor, status)} from balancer-manager's member table (route = backend name)."""
    url = f"{settings['apache_manager']}?b={settings['apache_balancer']}"
    with urllib.request.urlopen(url, timeout=3) as response:
        parser = _Cells()
        parser.feed(response.read().decode())
    return {row[1]: (row[3], row[5].strip()) for row in parser.rows if len(row) > 5 and row[0].startswith("http")}


def main() -> int:
    settings = json.loads(sys.argv[1])
    instances = settings["instances"]
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(instances)))) as pool:
        views = list(pool.map(instance_view, instances))
    kind = settings["kind"]
    try:
        balancer = {"haproxy": haproxy_view, "nginx": nginx_view, "apache": apache_view}[kind](settings)
    except (OSError, KeyError, ValueError, IndexError) as error:
        balancer = {}
        print(f"could not read {kind}'s view: {error}")
    columns = ["instance", "version", "ready", "lb weight", "lb state", "in flight", "req/min", "p99 ms", "err%", "db pool"]
    rows = []
    for instance, view in zip(instances, views):
        key = f"{instance['address']}:{instance['port']}" if kind == "nginx" else instance["name"]
        weight, state = balancer.get(key, ("?", "not in the balancer"))
        rows.append([instance["name"], view["version"], view["ready"], weight, state, view["in_flight"], view["rpm"],
                     view["p99_ms"], view["err_pct"], view["db"]])
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows)]
    for row in [columns] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
