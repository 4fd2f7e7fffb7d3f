#!/usr/bin/python3
"""Print a table of every app instance: version, readiness, the balancer's weight and state for it, and
the key figures of its /health/metrics. Runs on the balancer host (allowed to read /health/metrics).

Usage: fleet_status.py SETTINGS_JSON
SETTINGS_JSON: {"instances": [{"name", "address", "port", "weight"}],
                "balancer": the lb role's lb_status fact, {"kind", "backends": {name: {"weight", "state"}}, "error"}}
"""

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


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


def p99_cell(metrics: dict) -> str:
    """The p99 column, to a tenth of a millisecond: "?" when the instance did not say, "-" when it served no
    request in the window."""
    response_time = metrics.get("response_time")
    if not isinstance(response_time, dict) or not isinstance(response_time.get("p99_ms", "?"), (int, float, type(None))):
        return "?"
    return "-" if response_time["p99_ms"] is None else f"{response_time['p99_ms']:.1f}"


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
        "p99_ms": p99_cell(metrics),
        "err_pct": metrics.get("error_rate_percent", "?"),
        "db": "{in_use}/{max}".format(**metrics["database_connections"]) if "database_connections" in metrics else "?",
    }


def balancer_line(balancer: dict) -> str:
    """Whose view the table shows: the lb host and its kind, and with a pair, whether it holds the VIP."""
    line = f"balancer {balancer.get('host', '?')} ({balancer['kind']})"
    if balancer.get("vip"):
        held = balancer.get("holds_vip") in (True, "True", "true")
        line += f": {'holds' if held else 'standby for'} the floating address {balancer['vip']}"
    return line


def main() -> int:
    settings = json.loads(sys.argv[1])
    instances = settings["instances"]
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(instances)))) as pool:
        views = list(pool.map(instance_view, instances))
    balancer = settings["balancer"]
    print(balancer_line(balancer))
    if balancer["error"]:
        print(f"could not read {balancer['kind']}'s view: {balancer['error']}")
    # One word each: the play's YAML output folds a long line at a single space, never at two.
    columns = ["instance", "version", "ready", "lb-weight", "lb-state", "in-flight", "req/min", "p99-ms", "err%",
               "db-pool"]
    # A view that could not be read says nothing of an instance's place in the balancer.
    absent = {"weight": "?", "state": "unknown" if balancer["error"] else "not in the balancer"}
    rows = []
    for instance, view in zip(instances, views):
        seen = balancer["backends"].get(instance["name"], absent)
        weight, state = seen["weight"], seen["state"]
        rows.append([instance["name"], view["version"], view["ready"], weight, state, view["in_flight"], view["rpm"],
                     view["p99_ms"], view["err_pct"], view["db"]])
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows)]
    for row in [columns] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
