#!/usr/bin/env python3
"""Scale-out figures on the lab: weight fidelity, rollout cost, and what Ansible costs per run.

    .venv/bin/python scripts/bench/scale.py fidelity [--kinds nginx haproxy apache] [--requests 10000]
    .venv/bin/python scripts/bench/scale.py rollout [--sizes 5 10 20] [--batch-sizes 1 25% 50%]
    .venv/bin/python scripts/bench/scale.py tuning

`fidelity`: for each kind, `site.yml -e lb_kind=KIND` (limits raised: all the requests come from one
address), then the weights read back from the live balancer config (nginx `weight=`, HAProxy `weight`,
Apache `loadfactor=`), then --requests GET /health/liveness through 127.0.0.1:8080 over --connections
keep-alive connections, counted by the X-Instance that answered. Per instance: the weight's share and
the observed share; per kind: the worst deviation in percentage points. A drained or zero-weight
server has share 0. The lab size is the lab's (make up APP_HOSTS=N).

`rollout`: the lab must hold the largest size (make up APP_HOSTS=20). For each size, the inventory is cut
to that many app hosts (ROLLGATE_APP_HOSTS), site.yml converges it (the balancer then lists those hosts),
and for each batch size a rolling deploy of a new version runs under the zero-downtime benchmark's load
(--rate). Per run: wall time, batches and the seconds of each (from the rollout's summary), failed
requests.

`tuning`: on the lab as it is, the wall time of a bare fact-gathering run (`ansible all -m setup`)
against a warm site.yml (nothing to change), each --repeat times.

Output: build/bench/scale-<timestamp>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402  (lab helpers)
import loadgen  # noqa: E402
import zero_downtime as zd  # noqa: E402

log = logging.getLogger("scale")

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("nginx", "haproxy", "apache")
CONFIG_PATHS = {"nginx": "/etc/nginx/nginx.conf", "haproxy": "/etc/haproxy/haproxy.cfg",
                "apache": "/etc/apache2/sites-available/rollgate.conf"}
# (name, weight) of each server line, per kind; names are <host>_<port>.
SERVER_LINES = {
    "nginx": re.compile(r"^\s*server\s+\S+\s+weight=(?P<weight>\d+)[^#\n]*?(?P<down>\bdown\b)?;\s*#\s*(?P<name>\S+)", re.M),
    "haproxy": re.compile(r"^\s*server\s+(?P<name>\S+)\s+\S+\s+weight\s+(?P<weight>\d+)", re.M),
    "apache": re.compile(r'^\s*BalancerMember\s+"[^"]+"\s+route=(?P<name>\S+)\s+loadfactor=(?P<weight>\d+)'
                         r'(?P<down>.*status=\+N)?', re.M),
}


def live_weights(kind: str, lb_host: str) -> dict[str, int]:
    """Instance ("host:port") to its weight in the balancer's live config (0 when drained)."""
    config = faults.podman_exec(lb_host, "cat", CONFIG_PATHS[kind])
    weights: dict[str, int] = {}
    for match in SERVER_LINES[kind].finditer(config):
        host, _, port = match["name"].rpartition("_")
        drained = bool(match.groupdict().get("down"))
        weights[f"{host}:{port}"] = 0 if drained else int(match["weight"])
    if not weights:
        raise RuntimeError(f"no server lines found in {lb_host}:{CONFIG_PATHS[kind]}")
    return weights


def count_instances(url: str, requests: int, connections: int) -> tuple[Counter[str], Counter[str]]:
    """Send ``requests`` GETs over ``connections`` keep-alive connections; count the X-Instance seen."""
    target = loadgen.Target.from_url(url)
    seen: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    lock = threading.Lock()
    remaining = [requests]

    def worker() -> None:
        conn = target.connection(5.0)
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            try:
                conn.request("GET", "/health/liveness")
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    conn.close()
                with lock:
                    if response.status == 200:
                        seen[response.headers.get("x-instance") or "(none)"] += 1
                    else:
                        problems[str(response.status)] += 1
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with lock:
                    problems[type(exc).__name__] += 1
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen, problems


def fidelity(weights: dict[str, int], seen: Counter[str]) -> dict[str, Any]:
    total_weight = sum(weights.values())
    total_seen = sum(seen.values())
    rows = {}
    for instance in sorted(set(weights) | set(seen)):
        expected = weights.get(instance, 0) / total_weight * 100 if total_weight else 0.0
        observed = seen.get(instance, 0) / total_seen * 100 if total_seen else 0.0
        rows[instance] = {"weight": weights.get(instance, 0), "expected_pct": round(expected, 2),
                          "observed_pct": round(observed, 2), "deviation_pp": round(observed - expected, 2)}
    worst = max((abs(row["deviation_pp"]) for row in rows.values()), default=None)
    return {"instances": rows, "answered": total_seen, "worst_deviation_pp": worst}


def command_fidelity(args: argparse.Namespace) -> int:
    lab = faults.Lab.from_inventory(args.inventory)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"scale-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "app_hosts": len(lab.app_hosts),
                               "requests": args.requests, "kinds": {}}
    for kind in args.kinds:
        if args.setup:
            setup = zd.run_playbook("site.yml", {"lb_kind": kind, "app_rate_limit_per_minute": 0,
                                                 "lb_rate_limit_per_second": 100000},
                                    args.inventory, work_dir / f"{kind}-site.log", args.playbook_timeout)
            if setup.rc != 0:
                results["kinds"][kind] = {"error": f"site.yml failed; see {setup.log}"}
                continue
        weights = live_weights(kind, lab.lb)
        started = time.monotonic()
        seen, problems = count_instances(args.url, args.requests, args.connections)
        figures = fidelity(weights, seen)
        figures.update(seconds=round(time.monotonic() - started, 1), problems=dict(problems))
        results["kinds"][kind] = figures
        log.info("%s: worst deviation %s pp over %d answers", kind, figures["worst_deviation_pp"], figures["answered"])
    if args.setup and args.restore:
        zd.run_playbook("site.yml", {}, args.inventory, work_dir / "restore-site.log", args.playbook_timeout)
    path = args.out_dir / f"scale-{stamp}.json"
    zd.write_results(results, path)
    print("| balancer | app hosts | instances | requests answered | other answers | worst deviation (pp) |")
    print("|---|---|---|---|---|---|")
    for kind, figures in results["kinds"].items():
        if "error" in figures:
            print(f"| {kind} | error: {figures['error']} | | | | |")
            continue
        print(f"| {kind} | {results['app_hosts']} | {len(figures['instances'])} | {figures['answered']} "
              f"| {figures['problems'] or '-'} | {figures['worst_deviation_pp']} |")
    print(f"\nFigures: {path}")
    return 0


BATCH_LINE = re.compile(r"batch (?P<number>\d+) \((?P<hosts>[^)]*)\): (?P<outcome>\w+) in (?P<seconds>[\d.]+) s")


def batches_from_log(path: Path) -> list[dict[str, Any]]:
    """The rollout summary's batch lines (the last summary of the log)."""
    found = [match.groupdict() for match in BATCH_LINE.finditer(path.read_text(encoding="utf-8", errors="replace"))]
    last_first = max((i for i, batch in enumerate(found) if batch["number"] == "1"), default=0)
    return [{"number": int(b["number"]), "hosts": b["hosts"].split(", "), "outcome": b["outcome"],
             "seconds": float(b["seconds"])} for b in found[last_first:]]


def command_rollout(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"scale-rollout-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rate": args.rate, "runs": []}
    run_id = zd.default_run_id()
    versions = {(size, batch): f"1.{run_id}.{index + 1}" for index, (size, batch) in
                enumerate((size, batch) for size in args.sizes for batch in args.batch_sizes)}
    common = {"lb_kind": args.kind, "app_rate_limit_per_minute": max(600, int(args.rate * 240))}
    # The wheelhouses first, so that no deploy's wall time holds a build.
    zd.prebuild(sorted(set(versions.values())), args, work_dir)
    failed = False
    for size in args.sizes:
        os.environ["ROLLGATE_APP_HOSTS"] = str(size)
        setup = zd.run_playbook("site.yml", common, args.inventory, work_dir / f"site-{size}.log", args.playbook_timeout)
        if setup.rc != 0:
            results["runs"].append({"app_hosts": size, "error": f"site.yml failed; see {setup.log}"})
            failed = True
            continue
        for batch in args.batch_sizes:
            version = versions[(size, batch)]
            case = zd.Case(f"hosts{size}-batch{batch.replace('%', 'pct')}", zd.ROLLING_PLAYBOOK, version,
                           {**common, "app_version": version,
                            "rollout_batch_size": int(batch) if batch.isdigit() else batch}, expect_success=True)
            outcome = zd.run_case(case, args.kind, args, work_dir)
            batches = batches_from_log(Path(outcome["log"])) if Path(outcome["log"]).is_file() else []
            total = outcome["figures"].get("all", {})
            results["runs"].append({
                "app_hosts": size, "batch_size": batch, "version": version, "rc": outcome["rc"],
                "wall_s": outcome["deploy_seconds"], "batches": batches,
                "batch_seconds_mean": round(sum(b["seconds"] for b in batches) / len(batches), 1) if batches else None,
                "requests": total.get("requests"), "failed": total.get("failed"),
                "resent": total.get("retried_stale_connection"), "figures": outcome["figures"]})
            failed = failed or outcome["unexpected"]
            zd.write_results(results, args.out_dir / f"scale-rollout-{stamp}.json")
    os.environ.pop("ROLLGATE_APP_HOSTS", None)
    path = args.out_dir / f"scale-rollout-{stamp}.json"
    zd.write_results(results, path)
    print("| app hosts | batch size | batches | deploy wall s | mean s per batch | requests | failed | resent |")
    print("|---|---|---|---|---|---|---|---|")
    for run in results["runs"]:
        if "error" in run:
            print(f"| {run['app_hosts']} | error: {run['error']} | | | | | | |")
            continue
        print(f"| {run['app_hosts']} | {run['batch_size']} | {len(run['batches'])} | {run['wall_s']} "
              f"| {run['batch_seconds_mean']} | {run['requests']} | {run['failed']} | {run['resent']} |")
    print(f"\nFigures: {path}")
    return 1 if failed else 0


def timed(command: Sequence[str], log_path: Path) -> float:
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as output:
        rc = subprocess.run(list(command), cwd=REPO_ROOT, env=zd.tool_environment(), stdout=output,
                            stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({rc}); see {log_path}")
    return round(time.monotonic() - started, 1)


def command_tuning(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"scale-tuning-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    lab = faults.Lab.from_inventory(args.inventory)
    results: dict[str, Any] = {"app_hosts": len(lab.app_hosts), "facts_s": [], "site_warm_s": []}
    for attempt in range(args.repeat):
        results["facts_s"].append(timed(["ansible", "-i", args.inventory, "all", "-m", "ansible.builtin.setup"],
                                        work_dir / f"facts-{attempt}.log"))
        results["site_warm_s"].append(timed(["ansible-playbook", "-i", args.inventory, "site.yml"],
                                            work_dir / f"site-{attempt}.log"))
    path = args.out_dir / f"scale-tuning-{stamp}.json"
    zd.write_results(results, path)
    print(f"app hosts {results['app_hosts']}: facts only {results['facts_s']} s, warm site.yml {results['site_warm_s']} s")
    print(f"Figures: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="scale: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    fid = commands.add_parser("fidelity", help="observed share of each instance against its weight")
    fid.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    fid.add_argument("--requests", type=int, default=10000)
    fid.add_argument("--connections", type=int, default=8)
    fid.add_argument("--url", default="http://127.0.0.1:8080")
    fid.add_argument("--inventory", default="inventories/lab")
    fid.add_argument("--playbook-timeout", type=float, default=1800.0)
    fid.add_argument("--no-setup", dest="setup", action="store_false",
                     help="measure the lab's current balancer as it is (its limits must allow the rate)")
    fid.add_argument("--no-restore", dest="restore", action="store_false")
    fid.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    fid.set_defaults(handler=command_fidelity)
    roll = commands.add_parser("rollout", help="rolling deploy wall time by fleet size and batch size")
    roll.add_argument("--sizes", nargs="+", type=int, default=[5, 10, 20])
    roll.add_argument("--batch-sizes", nargs="+", default=["1", "25%", "50%"])
    roll.add_argument("--kind", choices=KINDS, default="nginx")
    zd.add_load_arguments(roll, rate=20.0, workers=20)
    roll.add_argument("--steady", type=float, default=5.0)
    roll.add_argument("--after", type=float, default=5.0)
    roll.add_argument("--inventory", default="inventories/lab")
    roll.add_argument("--playbook-timeout", type=float, default=3600.0)
    roll.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    roll.set_defaults(handler=command_rollout)
    tune = commands.add_parser("tuning", help="bare fact gathering against a warm site.yml")
    tune.add_argument("--repeat", type=int, default=2)
    tune.add_argument("--inventory", default="inventories/lab")
    tune.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    tune.set_defaults(handler=command_tuning)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
