"""Benchmark one instance with wrk: requests/s and p50/p99 latency for GET /items/{id} and
GET /health/readiness. Not a test: it prints figures.

    bash scripts/test-services.sh start
    .venv/bin/python app/bench/bench.py [--duration 10] [--connections 16] [--threads 1]

It starts its own instance (on 127.0.0.1, an ephemeral port) against the test services, in a
database of its own, with the rate limiter on but set high enough not to refuse the load, and with
access logging off (as deployed). All traffic goes to 127.0.0.1 and each run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import ADMIN, AppProcess, load_services_env, login, new_item

BENCH_DATABASE = "rollgate_bench"
BENCH_REDIS_DBS = {"REDIS_DB": "7", "REDIS_CACHE_DB": "8", "REDIS_SESSION_DB": "9"}
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """requests/s and latency percentiles (ms) from wrk --latency output."""
    figures: dict[str, float] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate:
        figures["requests_per_second"] = float(rate.group(1))
    for percent, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M):
        figures[f"p{percent}_ms"] = round(float(value) * _UNITS[unit], 3)
    total = re.search(r"(\d+) requests in", output)
    if total:
        figures["requests"] = int(total.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = int(errors.group(1)) if errors else 0
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, duration: int, connections: int, threads: int, server_pid: int) -> dict[str, float]:
    before = cpu_seconds(server_pid)
    result = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "--latency", url],
        capture_output=True, text=True, check=True, timeout=duration + 60)
    figures = parse_wrk(result.stdout)
    # CPU per request depends much less than requests/s on what else the machine is doing.
    if figures.get("requests"):
        figures["server_cpu_us_per_request"] = round((cpu_seconds(server_pid) - before) / figures["requests"] * 1e6)
    return figures


def prepare_database(services: dict[str, str]) -> None:
    admin = psycopg.conninfo.make_conninfo(host=services["DB_HOST"], port=services["DB_PORT"],
                                           dbname=services["DB_DATABASE"], user=services["DB_USERNAME"],
                                           password=services["DB_PASSWORD"])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    for db in BENCH_REDIS_DBS.values():
        client = redis.Redis(host=services["REDIS_HOST"], port=int(services["REDIS_PORT"]),
                             password=services["REDIS_PASSWORD"], db=int(db))
        client.flushdb()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint (default 2)")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be from 1 to 120 seconds")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")

    services = load_services_env()
    prepare_database(services)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_", "REDIS_"))},
        **{k: v for k, v in services.items() if k.startswith(("DB_", "REDIS_"))},
        **BENCH_REDIS_DBS,
        "DB_DATABASE": BENCH_DATABASE,
        "APP_KEY": "base64:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "APP_ENV": "testing",
        "SESSION_COOKIE_SECURE": "false",
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory() as logs:
        app = AppProcess(env, Path(logs), "bench").start()
        try:
            app.wait_ready()
            item = new_item(app.base_url, login(app.base_url), quantity=1000)
            assert httpx.get(f"{app.base_url}/items/{item['id']}").status_code == 200
            targets = {"GET /items/{id}": f"{app.base_url}/items/{item['id']}",
                       "GET /health/readiness": f"{app.base_url}/health/readiness"}
            results = {}
            assert app.process is not None
            load_before = os.getloadavg()[0]
            for name, url in targets.items():
                run_wrk(url, args.warmup, args.connections, args.threads, app.process.pid)
                results[name] = run_wrk(url, args.duration, args.connections, args.threads, app.process.pid)
                time.sleep(1)
            load_after = os.getloadavg()[0]
        finally:
            app.stop()

    print(f"one instance, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, all on 127.0.0.1; "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    print(f"{'endpoint':<24}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'CPU us/req':>12}")
    for name, figures in results.items():
        print(f"{name:<24}{figures.get('requests_per_second', 0):>12.0f}{figures.get('p50_ms', 0):>10.2f}"
              f"{figures.get('p99_ms', 0):>10.2f}{figures.get('non_2xx', 0):>9}"
              f"{figures.get('server_cpu_us_per_request', 0):>12}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
