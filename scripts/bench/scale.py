#!/usr/bin/env python3
"""Scale-out figures on the lab: weight fidelity, rollout cost, and what Ansible costs per run.

    .venv/bin/python scripts/bench/scale.py fidelity [--kinds nginx haproxy apache] [--requests 10000]
    .venv/bin/python scripts/bench/scale.py rollout [--sizes 5 10 20] [--batch-sizes 25% 50% 1]
    .venv/bin/python scripts/bench/scale.py tuning [--profile]
    .venv/bin/python scripts/bench/scale.py resources [--seconds 30] [--rate 50]

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

`resources`: CPU (share of one core) and memory of every lab host, read from its cgroup on this machine,
over --seconds idle and then --seconds under the zero-downtime benchmark's load; per role, the mean and
the largest host and the total.

Output: build/bench/scale-<timestamp>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402  (lab helpers)
import flood  # noqa: E402
import loadgen  # noqa: E402
import zero_downtime as zd  # noqa: E402
from zero_downtime import balancers  # noqa: E402

log = logging.getLogger("scale")

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = balancers.kinds()
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
    """Send ``requests`` GETs over ``connections`` keep-alive connections, as fast as they answer; count
    the X-Instance of each 200, and the other statuses and errors."""
    outcome = flood.flood_requests(url, rate=1e9, duration=3600, connections=connections, max_requests=requests,
                                   path="/health/liveness", count_header="X-Instance")
    problems = Counter({status: count for status, count in outcome["statuses"].items() if status != "200"})
    problems.update(outcome["errors"])
    return Counter(outcome["by_header"]), problems


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
                                                 "lb_rate_limit_per_second": 100000, **zd.CONVERGE_VERSION},
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
        zd.run_playbook("site.yml", dict(zd.CONVERGE_VERSION), args.inventory, work_dir / "restore-site.log",
                        args.playbook_timeout)
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


# The YAML callback folds a long line; \s+ takes the fold (a line break and indentation) for a space.
BATCH_LINE = re.compile(r"batch\s+(?P<number>\d+)\s+\((?P<hosts>[^)]*)\):\s+(?P<outcome>[\w, ]+?)\s+in\s+(?P<seconds>[\d.]+)\s+s")


def batches_from_log(path: Path) -> list[dict[str, Any]]:
    """The rollout summary's batch lines (the last summary of the log)."""
    found = [match.groupdict() for match in BATCH_LINE.finditer(path.read_text(encoding="utf-8", errors="replace"))]
    last_first = max((i for i, batch in enumerate(found) if batch["number"] == "1"), default=0)
    return [{"number": int(b["number"]), "hosts": re.split(r",\s+", b["hosts"].strip()), "outcome": b["outcome"],
             "seconds": float(b["seconds"])} for b in found[last_first:]]


def batch_settings(batch: str, app_hosts: int, instances_per_host: int) -> dict[str, Any]:
    """The rollout settings of one --batch-sizes entry: a number of hosts keeps the default limit (one
    host's instances); a percentage of the hosts also lets that batch's instances be out at once, or the
    rollout's own check would refuse every batch beyond one host (a percentage of the instances rounds
    differently: 25 % of 5 hosts is 2 hosts, 4 instances, but 25 % of 10 instances is 3)."""
    if batch.isdigit():
        return {"rollout_batch_size": int(batch)}
    hosts_per_batch = max(1, math.ceil(app_hosts * float(batch.rstrip("%")) / 100))
    return {"rollout_batch_size": batch, "rollout_max_unavailable": hosts_per_batch * instances_per_host}


def command_rollout(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"scale-rollout-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rate": args.rate, "runs": []}
    run_id = zd.default_run_id()
    versions = {(size, batch): f"1.{run_id}.{index + 1}" for index, (size, batch) in
                enumerate((size, batch) for size in args.sizes for batch in args.batch_sizes)}
    common = {"lb_kind": args.kind, "app_rate_limit_per_minute": max(600, int(args.rate * 240))}
    lab = faults.Lab.from_inventory(args.inventory)
    if len(lab.app_hosts) < max(args.sizes):
        raise SystemExit(f"the lab has {len(lab.app_hosts)} app hosts, fewer than --sizes asks for: "
                         f"make up APP_HOSTS={max(args.sizes)}")
    # The wheelhouses first, so that no deploy's wall time holds a build.
    zd.prebuild(sorted(set(versions.values())), args, work_dir)
    failed = False
    for size in args.sizes:
        os.environ["ROLLGATE_APP_HOSTS"] = str(size)
        setup = zd.run_playbook("site.yml", {**common, **zd.CONVERGE_VERSION}, args.inventory, work_dir / f"site-{size}.log",
                                args.playbook_timeout)
        if setup.rc != 0:
            results["runs"].append({"app_hosts": size, "error": f"site.yml failed; see {setup.log}"})
            failed = True
            continue
        for batch in args.batch_sizes:
            version = versions[(size, batch)]
            case = zd.Case(f"hosts{size}-batch{batch.replace('%', 'pct')}", zd.ROLLING_PLAYBOOK, version,
                           {**common, "app_version": version, **batch_settings(batch, size, len(lab.ports))}, expect_success=True)
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


def timed(command: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as output:
        rc = subprocess.run(list(command), cwd=REPO_ROOT, env={**zd.tool_environment(), **(env or {})}, stdout=output,
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
        # profile_tasks adds each task's time to the log (the slowest 40 at the end) and costs little.
        results["site_warm_s"].append(timed(["ansible-playbook", "-i", args.inventory, "site.yml"],
                                            work_dir / f"site-{attempt}.log",
                                            {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                                             "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "40"} if args.profile else None))
    path = args.out_dir / f"scale-tuning-{stamp}.json"
    zd.write_results(results, path)
    print(f"app hosts {results['app_hosts']}: facts only {results['facts_s']} s, warm site.yml {results['site_warm_s']} s")
    print(f"Figures: {path}")
    return 0


def container_cgroup(name: str) -> str:
    """The container's cgroup path (cgroup v1 hierarchies under /sys/fs/cgroup/<controller>)."""
    return faults.run(["podman", "inspect", "--format", "{{.State.CgroupPath}}", name], timeout=30).strip()


def read_usage(cgroup: str) -> dict[str, int]:
    """CPU nanoseconds used so far, and memory: the cgroup's usage and its resident (anonymous) part."""
    root = Path("/sys/fs/cgroup")
    memory = dict(line.split() for line in (root / "memory" / cgroup.lstrip("/") / "memory.stat")
                  .read_text(encoding="utf-8").splitlines())
    return {"cpu_ns": int((root / "cpuacct" / cgroup.lstrip("/") / "cpuacct.usage").read_text(encoding="utf-8")),
            "memory_bytes": int((root / "memory" / cgroup.lstrip("/") / "memory.usage_in_bytes")
                                .read_text(encoding="utf-8")),
            "rss_bytes": int(memory.get("total_rss", memory.get("rss", 0)))}


def sample_window(cgroups: dict[str, str], seconds: float) -> dict[str, dict[str, float]]:
    """Per host over ``seconds``: CPU as a share of one core (%), memory and RSS (MiB) at the end."""
    before = {host: read_usage(path) for host, path in cgroups.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    after = {host: read_usage(path) for host, path in cgroups.items()}
    return {host: {"cpu_pct": round((after[host]["cpu_ns"] - before[host]["cpu_ns"]) / 1e9 / elapsed * 100, 1),
                   "memory_mib": round(after[host]["memory_bytes"] / 2**20, 1),
                   "rss_mib": round(after[host]["rss_bytes"] / 2**20, 1)} for host in cgroups}


def group_summary(lab: faults.Lab, window: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per role (lb, app, redis, db): hosts, mean and max per host, and the role's total."""
    roles = {"lb": [lab.lb], "app": lab.app_hosts, "redis": [lab.redis], "db": [lab.db]}
    summary: dict[str, dict[str, float]] = {}
    for role, hosts in roles.items():
        rows = [window[host] for host in hosts]
        summary[role] = {"hosts": len(rows)}
        for key in ("cpu_pct", "memory_mib", "rss_mib"):
            values = [row[key] for row in rows]
            summary[role].update({f"{key}_mean": round(sum(values) / len(values), 1),
                                  f"{key}_max": max(values), f"{key}_total": round(sum(values), 1)})
    summary["lab"] = {key: round(sum(row[key] for row in window.values()), 1)
                      for key in ("cpu_pct", "memory_mib", "rss_mib")}
    return summary


def command_resources(args: argparse.Namespace) -> int:
    """Memory and CPU of every lab host, idle and then under the benchmark's load through the balancer."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"scale-resources-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    lab = faults.Lab.from_inventory(args.inventory)
    hosts = [lab.lb, *lab.app_hosts, lab.redis, lab.db]
    cgroups = {host: container_cgroup(host) for host in hosts}
    results: dict[str, Any] = {"app_hosts": len(lab.app_hosts), "instances_per_host": len(lab.ports),
                               "seconds": args.seconds, "rate": args.rate, "windows": {}}
    results["windows"]["idle"] = sample_window(cgroups, args.seconds)
    generator = zd.LoadGenerator(args, work_dir / "load.jsonl", work_dir / "load.log")
    generator.start()
    try:
        time.sleep(5)  # past the login and the first connections
        results["windows"]["load"] = sample_window(cgroups, args.seconds)
    finally:
        generator.stop()
    records = loadgen.read_records(work_dir / "load.jsonl")
    results["load"] = loadgen.summarize(records)
    results["summary"] = {name: group_summary(lab, window) for name, window in results["windows"].items()}
    path = args.out_dir / f"scale-resources-{stamp}.json"
    zd.write_results(results, path)
    print(f"{len(lab.app_hosts)} app hosts, {len(lab.ports)} instances each; load {args.rate} requests/s "
          f"({results['load'].get('requests')} sent, {results['load'].get('failed')} failed)")
    print("| window | role | hosts | CPU % of a core, mean / max per host | memory MiB, mean / max per host "
          "| RSS MiB mean per host | role total: CPU % / memory MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, summary in results["summary"].items():
        for role in ("lb", "app", "redis", "db"):
            row = summary[role]
            print(f"| {name} | {role} | {row['hosts']} | {row['cpu_pct_mean']} / {row['cpu_pct_max']} "
                  f"| {row['memory_mib_mean']} / {row['memory_mib_max']} | {row['rss_mib_mean']} "
                  f"| {row['cpu_pct_total']} / {row['memory_mib_total']} |")
        lab_total = summary["lab"]
        print(f"| {name} | whole lab | {len(hosts)} | | | | {lab_total['cpu_pct']} / {lab_total['memory_mib']} |")
    print(f"\nFigures: {path}")
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
    # Percentages first: the one-host batches are the longest runs.
    roll.add_argument("--batch-sizes", nargs="+", default=["25%", "50%", "1"])
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
    tune.add_argument("--profile", action="store_true",
                      help="time each task of site.yml (ansible.posix.profile_tasks) in its log")
    tune.add_argument("--inventory", default="inventories/lab")
    tune.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    tune.set_defaults(handler=command_tuning)
    res = commands.add_parser("resources", help="memory and CPU of each lab host, idle and under load")
    res.add_argument("--seconds", type=float, default=30.0, help="length of each window (default: %(default)s)")
    zd.add_load_arguments(res)
    res.add_argument("--inventory", default="inventories/lab")
    res.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    res.set_defaults(handler=command_resources)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
