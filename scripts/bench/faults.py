#!/usr/bin/env python3
"""The fault suite: what production does to a deployment, under load, on the lab, per balancer.

    .venv/bin/python scripts/bench/faults.py [--kinds nginx haproxy apache] [--faults ...]   (make faults)

For each balancer kind, `site.yml -e lb_kind=KIND` sets the lab up; then each fault runs under the open-loop
load of loadgen.py (a logged-in client: item reads and stock movements through the balancer on 127.0.0.1),
--before seconds of steady state, the fault, the recovery, --after seconds more:

- kill_instance:  kill -9 of one app instance's main process; systemd starts it again.
- stop_host:      a whole app host (its container) stopped, --host-down seconds later started again.
- restart_redis:  Redis restarted: sessions must survive, readiness recover by itself, liveness never
                  fail, no instance be restarted.
- restart_postgresql: PostgreSQL restarted: the pools reconnect.
- flood_requests: a request flood from one other address (a lab host): 429s must go to it only.
- flood_slow:     slow clients (headers never finished) from one other address.

With a balancer pair (lb_vip set: make up LB_HOSTS=2), the load goes to the floating address itself, and three
faults hit the balancer that holds it (each skipped without a pair):

- pair_stop_host:       the holder's host (its container) stopped, --host-down seconds later started again;
                        the old holder back must not take the address back (preemption off).
- pair_kill_balancer:   kill -9 of every process of the holder's balancer (systemctl kill --kill-whom=all);
                        keepalived's port check moves the address, unless systemd restarts the balancer first.
- pair_stop_keepalived: keepalived stopped on the holder (it says goodbye: priority 0), then started again.

A second prober asks the floating address which balancer answers (scripts/bench/vip.py, every 50 ms). Failover:
from the fault to the first answer from another balancer. The failed requests are split into those in flight
at the fault, those sent in the gap before the failover, and those sent after it.

A prober polls every instance's /health/readiness (every 0.25 s) and /health/liveness (every 1 s) on the
lab hosts' own addresses. Time to detect: from the fault to the first probe that sees an affected
instance not ready (the signal the balancers' active checks use). Time to recover: from the fault (and,
for stop_host, from the host's start) until every affected instance is ready again (kill_instance: with
a new main process). Rejoined: the first request of the load answered by an affected instance after that.

After every fault an audit compares the stock movements stored in PostgreSQL with the Idempotency-Keys
of the load's writes: an acknowledged write missing (lost), a key stored twice (applied twice), a write
refused with 4xx yet stored, and (counted, not an error) a write whose client saw a failure but which was
applied. GET /stock/audit must say every quantity equals the sum of its movements.

Output: build/bench/faults-<timestamp>.json (all figures), the records under build/bench/faults-<timestamp>/,
and a Markdown table on stdout. Figures, not assertions: the exit status is 1 only when the lab could
not be set up or a fault's recovery never came.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
import vip  # noqa: E402  (the floating address seen from a client)
import zero_downtime as zd  # noqa: E402  (processes, playbooks, the load generator in the background)
from zero_downtime import balancers  # noqa: E402  (scripts/balancers.py: the balancer kinds)

log = logging.getLogger("faults")

REPO_ROOT = Path(__file__).resolve().parents[2]
FLOOD_SCRIPT = Path(__file__).resolve().parent / "flood.py"
KINDS = balancers.kinds()
PAIR_FAULTS = ("pair_stop_host", "pair_kill_balancer", "pair_stop_keepalived")
FAULTS = ("kill_instance", "stop_host", "restart_redis", "restart_postgresql", "flood_requests", "flood_slow",
          *PAIR_FAULTS)
DEFAULT_LOAD_URL = "http://127.0.0.1:8080"
# Seconds a pair fault waits for another balancer to answer the floating address.
FAILOVER_TIMEOUT = 30.0
APP_UNIT = "inventory@{port}.service"
READINESS_EVERY = 0.25
LIVENESS_EVERY = 1.0


# ---------------------------------------------------------------------------------------------
# The lab


def run(command: Sequence[str], timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False,
                            env=zd.tool_environment(), cwd=REPO_ROOT)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[:500]}")
    return result.stdout.strip()


def podman_exec(host: str, *command: str, timeout: float = 120) -> str:
    return run(["podman", "exec", host, *command], timeout=timeout)


def address_of(host: str) -> str:
    return run(["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", host])


def rendered_var(inventory: str, host: str, name: str) -> str:
    """A variable of `host` as its plays see it, templates rendered (ansible-inventory gives them as written):
    "" when it is not set."""
    result = subprocess.run(["ansible", "-i", inventory, host, "-m", "ansible.builtin.debug", "-a", f"var={name}"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT,
                            env={**zd.tool_environment(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                                 "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    if result.returncode != 0:
        raise RuntimeError(f"reading {name} of {host} failed: {(result.stdout + result.stderr).strip()[-500:]}")
    value = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"][host].get(name, "")
    # An undefined variable reads "VARIABLE IS NOT DEFINED!" or "<< error 1 - 'x' is undefined >>" by version.
    undefined = value is None or "NOT DEFINED" in str(value) or str(value).startswith("<< error")
    return "" if undefined else str(value)


@dataclass
class Lab:
    lb: str
    app_hosts: list[str]
    redis: str
    db: str
    ports: list[int]
    addresses: dict[str, str] = field(default_factory=dict)
    # A balancer pair: every lb host, and the floating address (lb_vip) or None.
    lbs: list[str] = field(default_factory=list)
    vip: str | None = None

    @classmethod
    def from_inventory(cls, inventory: str) -> Lab:
        listing = json.loads(run(["ansible-inventory", "-i", inventory, "--list"], timeout=120))
        groups = {name: listing.get(name, {}).get("hosts", []) for name in ("lb", "app", "redis", "db")}
        missing = [name for name, hosts in groups.items() if not hosts]
        if missing:
            raise RuntimeError(f"the inventory {inventory} has no host in {', '.join(missing)}")
        hostvars = listing.get("_meta", {}).get("hostvars", {})
        ports = [int(port) for port in hostvars.get(groups["app"][0], {}).get("app_instance_ports", [8000])]
        vip_address = rendered_var(inventory, groups["lb"][0], "lb_vip") if len(groups["lb"]) > 1 else None
        lab = cls(groups["lb"][0], groups["app"], groups["redis"][0], groups["db"][0], ports,
                  lbs=groups["lb"], vip=vip_address or None)
        lab.refresh_addresses()
        return lab

    def refresh_addresses(self) -> None:
        self.addresses = {host: address_of(host) for host in [*self.lbs, *self.app_hosts, self.redis, self.db]}

    @property
    def front(self) -> str:
        """The address clients reach the balancer at: the floating address of a pair, else the lb host's."""
        return self.vip or self.addresses[self.lb]

    def holders(self) -> list[str]:
        """The lb hosts that have the floating address now; a host that is down holds nothing."""
        assert self.vip is not None
        return vip.holders(self.vip, self.lbs, lambda host, command: run(
            ["podman", "exec", host, "sh", "-c", command], timeout=20, check=False))

    def instances(self) -> list[str]:
        return [f"{host}:{port}" for host in self.app_hosts for port in self.ports]

    def url(self, instance: str, path: str) -> str:
        host, port = instance.rsplit(":", 1)
        return f"http://{self.addresses[host]}:{port}{path}"

    def main_pid(self, instance: str) -> int:
        host, port = instance.rsplit(":", 1)
        try:
            return int(podman_exec(host, "systemctl", "show", "-p", "MainPID", "--value", APP_UNIT.format(port=port),
                                   timeout=20) or 0)
        except (RuntimeError, subprocess.TimeoutExpired):
            return 0

    def main_pids(self) -> dict[str, int]:
        return {instance: self.main_pid(instance) for instance in self.instances()}


# ---------------------------------------------------------------------------------------------
# The prober


class Prober(threading.Thread):
    """Polls every instance's readiness and liveness; keeps (time, instance, endpoint, status) events."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(name="prober", daemon=True)
        self.lab = lab
        self.events: list[tuple[float, str, str, int | str]] = []
        self.stop_event = threading.Event()

    @staticmethod
    def probe(url: str) -> int | str:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 (lab addresses)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError) as exc:
            return type(exc).__name__

    def run(self) -> None:
        # One thread per instance: a host that does not answer must not slow the probes of the others.
        threads = [threading.Thread(target=self.poll, args=(instance,), daemon=True)
                   for instance in self.lab.instances()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def poll(self, instance: str) -> None:
        next_liveness = 0.0
        while not self.stop_event.is_set():
            started = time.monotonic()
            status = self.probe(self.lab.url(instance, "/health/readiness"))
            self.events.append((time.time(), instance, "readiness", status))
            if started >= next_liveness:
                status = self.probe(self.lab.url(instance, "/health/liveness"))
                self.events.append((time.time(), instance, "liveness", status))
                next_liveness = started + LIVENESS_EVERY
            self.stop_event.wait(max(0.0, READINESS_EVERY - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)

    def latest_ready(self, instances: Sequence[str], since: float) -> bool:
        """Every instance's latest readiness probe after ``since`` answered 200."""
        latest: dict[str, int | str] = {}
        for when, instance, endpoint, status in list(self.events):
            if endpoint == "readiness" and instance in instances and when >= since:
                latest[instance] = status
        return len(latest) == len(instances) and all(status == 200 for status in latest.values())

    def first_not_ready(self, instances: Sequence[str], since: float) -> float | None:
        for when, instance, endpoint, status in list(self.events):
            if endpoint == "readiness" and instance in instances and when >= since and status != 200:
                return when
        return None

    def liveness_failures(self, start: float, end: float) -> int:
        return sum(1 for when, _, endpoint, status in list(self.events)
                   if endpoint == "liveness" and start <= when < end and status != 200)


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass
class FaultRun:
    """What a fault did: its marks (unix times), the instances it touched, and findings of its own."""

    affected: list[str]
    marks: dict[str, float] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    recovered: bool = False
    window_end: float | None = None  # the end of "during" when there is no readiness recovery (floods)


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def wait_recovered(prober: Prober, fault: FaultRun, since: float, timeout: float,
                   extra: Callable[[], bool] = lambda: True) -> None:
    """Wait for every affected instance to be ready again; record detect/recover marks."""
    def ready() -> bool:
        detected = prober.first_not_ready(fault.affected, fault.marks["fault"])
        if detected is not None:
            fault.marks.setdefault("detected", detected)
        return prober.latest_ready(fault.affected, max(since, detected or since)) and extra()

    # Let the prober see the fault first (a restart shorter than a probe interval may never show).
    time.sleep(READINESS_EVERY * 2)
    # ready() records the detection on every call (wait_until calls it at least once).
    fault.recovered = wait_until(ready, timeout)
    if fault.recovered:
        fault.marks["recovered"] = time.time()


def fault_kill_instance(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    instance = f"{lab.app_hosts[0]}:{lab.ports[0]}"
    fault = FaultRun([instance])
    pid = lab.main_pid(instance)
    fault.findings["pid_before"] = pid
    fault.marks["fault"] = time.time()
    podman_exec(lab.app_hosts[0], "kill", "-9", str(pid))
    wait_recovered(prober, fault, fault.marks["fault"], args.recover_timeout,
                   extra=lambda: lab.main_pid(instance) not in (0, pid))
    fault.findings["pid_after"] = lab.main_pid(instance)
    return fault


def fault_stop_host(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    host = lab.app_hosts[-1]
    fault = FaultRun([f"{host}:{port}" for port in lab.ports])
    address = lab.addresses[host]
    fault.marks["fault"] = time.time()
    run(["podman", "stop", "-t", "30", host], timeout=60)
    fault.marks["host_stopped"] = time.time()
    time.sleep(max(0.0, args.host_down - (time.time() - fault.marks["fault"])))
    run(["podman", "start", host], timeout=60)
    fault.marks["host_started"] = time.time()
    fault.findings["address_kept"] = address_of(host) == address
    wait_recovered(prober, fault, fault.marks["host_started"], args.recover_timeout)
    return fault


def restart_dependency(lab: Lab, prober: Prober, args: argparse.Namespace, host: str, unit: str,
                       session: loadgen.SharedSession | None) -> FaultRun:
    fault = FaultRun(lab.instances())
    pids = lab.main_pids()
    fault.marks["fault"] = time.time()
    podman_exec(host, "systemctl", "restart", unit)
    fault.marks["restarted"] = time.time()
    wait_recovered(prober, fault, fault.marks["fault"], args.recover_timeout)
    end = fault.marks.get("recovered", time.time())
    fault.findings["liveness_failures"] = prober.liveness_failures(fault.marks["fault"], end + 1)
    after = lab.main_pids()
    fault.findings["instances_restarted"] = sorted(i for i in pids if pids[i] != after.get(i))
    if session is not None:
        # The session made before the restart still works after it: Redis kept it.
        answer = loadgen.json_request(session_target(args), "GET", "/auth/csrf",
                                      headers={"Cookie": f"{loadgen.SESSION_COOKIE}={session.cookie}"})
        fault.findings["session_survived"] = answer.status == 200
    return fault


def fault_restart_redis(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    session = loadgen.SharedSession(session_target(args), "admin", loadgen.read_password(loadgen.DEFAULT_PASSWORD_FILE),
                                    10.0)
    session.login()
    return restart_dependency(lab, prober, args, lab.redis, "redis-server", session)


def fault_restart_postgresql(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    return restart_dependency(lab, prober, args, lab.db, "postgresql", None)


def flood_from(lab: Lab, host: str, flood_args: Sequence[str], timeout: float) -> dict[str, Any]:
    run(["podman", "cp", str(FLOOD_SCRIPT), f"{host}:/tmp/rollgate-flood.py"])
    output = podman_exec(host, "python3", "/tmp/rollgate-flood.py", *flood_args, timeout=timeout)
    result: dict[str, Any] = json.loads(output.splitlines()[-1])
    result["from"] = f"{host} ({lab.addresses[host]})"
    return result


def fault_flood_requests(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    fault = FaultRun([])
    fault.marks["fault"] = time.time()
    fault.findings["flood"] = flood_from(lab, lab.db, [
        "requests", "--url", f"http://{lab.front}", "--rate", str(args.flood_rate),
        "--duration", str(args.flood_seconds), "--connections", "20"], timeout=args.flood_seconds + 60)
    fault.window_end = time.time()
    fault.recovered = True
    return fault


def fault_flood_slow(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    fault = FaultRun([])
    fault.marks["fault"] = time.time()
    fault.findings["flood"] = flood_from(lab, lab.db, [
        "slow", "--host", lab.front, "--port", "80", "--connections", str(args.slow_connections),
        "--duration", str(args.slow_seconds), "--interval", "5"], timeout=args.slow_seconds + 120)
    fault.window_end = time.time()
    fault.recovered = True
    return fault


def pair_fault(lab: Lab, args: argparse.Namespace, inject: Callable[[str], None],
               undo: Callable[[str], None]) -> FaultRun:
    """A fault on the balancer that holds the floating address: `inject(holder)`, the failover seen by a prober
    of the address, then `undo(holder)` (the host or keepalived back) and --after seconds to see whether the
    old holder takes the address back. Marks: fault, moved (the first answer from another balancer), undone."""
    assert lab.vip is not None
    found = lab.holders()
    if len(found) != 1:
        raise RuntimeError(f"the floating address {lab.vip} has {len(found)} holders ({found}), not one")
    old = found[0]
    fault = FaultRun([])
    prober = vip.VipProber(lab.vip)
    prober.start()
    moved = back = None
    try:
        time.sleep(1)
        fault.marks["fault"] = time.time()
        try:
            inject(old)
            # Until another balancer answers (a failover), or the holder's own balancer answers again after a gap
            # (systemd restarted it before keepalived's check moved the address).
            deadline = time.monotonic() + FAILOVER_TIMEOUT
            while time.monotonic() < deadline:
                moved = prober.first_answer(fault.marks["fault"], old)
                back = prober.back_after_gap(fault.marks["fault"], old)
                if moved is not None or back is not None:
                    break
                time.sleep(0.05)
            if moved is not None:
                fault.marks["moved"] = moved
            if back is not None:
                fault.marks["back"] = back
            fault.findings.update(
                old_holder=old, new_holders=lab.holders(), gap_seen=prober.gap_seen(fault.marks["fault"]),
                failover_s=round(moved - fault.marks["fault"], 2) if moved is not None else None,
                back_on_the_holder_s=round(back - fault.marks["fault"], 2) if back is not None else None)
        finally:
            # Whatever happened, the host or keepalived comes back: the next fault needs the pair whole.
            undo(old)
            fault.marks["undone"] = time.time()
        time.sleep(args.after)
        fault.findings["holders_after_undo"] = lab.holders()
        fault.findings["answered_after_undo"] = prober.balancers_since(fault.marks["undone"])
    finally:
        prober.stop()
    # Recovered: the address answered again, from another balancer or from the holder's restarted one; or no
    # probe ever went unanswered (a restart shorter than the probes' 50 ms).
    answered = [mark for mark in (fault.marks.get("moved"), fault.marks.get("back")) if mark is not None]
    fault.recovered = bool(answered) or not fault.findings.get("gap_seen", True)
    if answered:
        fault.marks["recovered"] = min(answered)
    return fault


def fault_pair_stop_host(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    stopping: list[subprocess.Popen] = []

    def stop(host: str) -> None:
        # Not waited for here: the prober must see the failover while the host shuts down.
        stopping.append(subprocess.Popen(["podman", "stop", "-t", "30", host], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))

    def start(host: str) -> None:
        stopping[0].wait(timeout=60)
        time.sleep(args.host_down)
        run(["podman", "start", host], timeout=60)
        wait_until(lambda: run(["podman", "exec", host, "systemctl", "is-system-running"], timeout=20,
                               check=False) in ("running", "degraded"), args.recover_timeout, every=1)

    return pair_fault(lab, args, stop, start)


def fault_pair_kill_balancer(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    unit = balancers.service(args.kind)

    def kill(host: str) -> None:
        podman_exec(host, "systemctl", "kill", "--signal=SIGKILL", "--kill-whom=all", unit, timeout=20)

    def start(host: str) -> None:
        # systemd may have restarted it already (HAProxy's unit does): then this changes nothing.
        podman_exec(host, "systemctl", "start", unit, timeout=60)

    return pair_fault(lab, args, kill, start)


def fault_pair_stop_keepalived(lab: Lab, prober: Prober, args: argparse.Namespace) -> FaultRun:
    return pair_fault(lab, args, lambda host: podman_exec(host, "systemctl", "stop", "keepalived", timeout=30),
                      lambda host: podman_exec(host, "systemctl", "start", "keepalived", timeout=30))


FAULT_FUNCTIONS: dict[str, Callable[[Lab, Prober, argparse.Namespace], FaultRun]] = {
    "kill_instance": fault_kill_instance, "stop_host": fault_stop_host, "restart_redis": fault_restart_redis,
    "restart_postgresql": fault_restart_postgresql, "flood_requests": fault_flood_requests,
    "flood_slow": fault_flood_slow, "pair_stop_host": fault_pair_stop_host,
    "pair_kill_balancer": fault_pair_kill_balancer, "pair_stop_keepalived": fault_pair_stop_keepalived}


def session_target(args: argparse.Namespace) -> loadgen.Target:
    return loadgen.Target.from_url(args.url)


# ---------------------------------------------------------------------------------------------
# The audit


def stored_keys(lab: Lab, since: float) -> list[str]:
    query = ("SELECT idempotency_key FROM stock_movements WHERE idempotency_key IS NOT NULL "
             f"AND created_at >= to_timestamp({since - 60:.0f})")
    output = podman_exec(lab.db, "runuser", "-u", "postgres", "--", "psql", "-d", "inventory", "-Atc", query)
    return [line for line in output.splitlines() if line]


def audit(lab: Lab, records: list[dict[str, Any]], since: float, args: argparse.Namespace) -> dict[str, Any]:
    writes = [r for r in records if r.get("kind") == "write" and r.get("key")]
    keys = {r["key"] for r in writes}
    stored = [key for key in stored_keys(lab, since) if key in keys]
    stored_set = set(stored)
    acknowledged = {r["key"] for r in writes if r["status"] in (200, 201)}
    failed = {r["key"] for r in writes if r["error"] in loadgen.FAILURE_CLASSES}
    refused = {r["key"] for r in writes if r["error"] in loadgen.REJECTION_CLASSES}
    session = loadgen.SharedSession(session_target(args), "admin",
                                    loadgen.read_password(loadgen.DEFAULT_PASSWORD_FILE), 10.0)
    session.login()
    answer = loadgen.json_request(session_target(args), "GET", "/stock/audit",
                                  headers={"Cookie": f"{loadgen.SESSION_COOKIE}={session.cookie}"})
    consistent = answer.json().get("consistent") if answer.status == 200 else None
    return {"writes": len(writes), "acknowledged": len(acknowledged), "stored": len(stored),
            "lost": len(acknowledged - stored_set), "applied_twice": len(stored) - len(stored_set),
            "refused_but_stored": len(refused & stored_set), "failed": len(failed),
            "failed_but_applied": len(failed & stored_set), "quantities_match_movements": consistent}


# ---------------------------------------------------------------------------------------------
# One fault under load


def seconds_between(marks: dict[str, float], start: str, end: str) -> float | None:
    if start in marks and end in marks:
        return round(marks[end] - marks[start], 1)
    return None


def run_fault(name: str, kind: str, lab: Lab, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    stem = work_dir / f"{kind}-{name}"
    records_path = stem.with_suffix(".jsonl")
    result: dict[str, Any] = {"fault": name, "error": None, "records": str(records_path)}
    prober = Prober(lab)
    prober.start()
    generator = zd.LoadGenerator(args, records_path, Path(f"{stem}.loadgen.log"))
    fault: FaultRun | None = None
    marks: dict[str, float] = {}
    try:
        marks["load_start"] = generator.start()
        zd.sleep_with_load(args.before, generator)
        log.info("%s/%s: injecting the fault", kind, name)
        fault = FAULT_FUNCTIONS[name](lab, prober, args)
        marks.update(fault.marks)
        if not fault.recovered:
            result["error"] = f"not recovered within {args.recover_timeout:.0f} s"
            log.error("%s/%s: %s", kind, name, result["error"])
        log.info("%s/%s: %s; %.0f s more of load", kind, name,
                 "recovered" if fault.recovered else "NOT recovered", args.after)
        zd.sleep_with_load(args.after, generator)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        result["error"] = str(exc)
        log.error("%s/%s: %s", kind, name, exc)
    finally:
        marks["load_stop"] = time.time()
        generator.stop()
        prober.stop()
        Path(f"{stem}.marks.json").write_text(json.dumps(marks, indent=2) + "\n", encoding="utf-8")

    if fault is None or not records_path.is_file():
        return result
    # The load's client retries a request that got no answer (--retry-failed): the figures below are those of a
    # client that does not (each request's first failure), and failed_with_retry the retrying client's.
    retrying = loadgen.read_records(records_path)
    records = [loadgen.without_retry(record) for record in retrying]
    during_end = fault.window_end or marks.get("recovered") or marks["load_stop"]
    figures = {
        "before": loadgen.summarize(records, marks["load_start"], marks["fault"]),
        "during": loadgen.summarize(records, marks["fault"], during_end),
        "after": loadgen.summarize(records, during_end, marks["load_stop"]),
        "all": loadgen.summarize(records)}
    rejoined = next((r["t"] for r in records if r["t"] >= marks.get("recovered", math.inf)
                     and r.get("instance") in fault.affected), None)
    # Requests an affected instance answered while its readiness said it should get none.
    # (For a dependency restart the instances keep serving what needs no Redis or database: not counted.)
    answered_while_unready = None
    if name in ("kill_instance", "stop_host"):
        answered_while_unready = sum(1 for r in records if r.get("instance") in fault.affected
                                     and marks.get("detected", math.inf) <= r["t"] < marks.get("recovered", 0))
    if name in PAIR_FAULTS:
        result["pair_failed"] = vip.failed_around(records, marks["fault"], marks.get("recovered"),
                                                  loadgen.FAILURE_CLASSES)
        result["pair_failed_with_retry"] = vip.failed_around(retrying, marks["fault"], marks.get("recovered"),
                                                             loadgen.FAILURE_CLASSES)
    result.update(
        affected=fault.affected, marks=marks, findings=fault.findings, figures=figures,
        detect_s=seconds_between(marks, "fault", "detected"),
        recover_s=seconds_between(marks, "fault", "recovered"),
        recover_after_start_s=seconds_between(marks, "host_started", "recovered"),
        rejoin_s=round(rejoined - marks["fault"], 1) if rejoined else None,
        answered_while_unready=answered_while_unready,
        session_refreshes=sum(1 for r in records if r.get("status") in (401, 403)),
        failed_with_retry=loadgen.summarize(retrying)["failed"],
    )
    try:
        result["audit"] = audit(lab, retrying, marks["load_start"], args)
    except (RuntimeError, OSError, ValueError) as exc:
        result["audit"] = {"error": str(exc)}
    return result


# ---------------------------------------------------------------------------------------------
# Report


def pair(figures: dict[str, Any] | None) -> str:
    return "-" if not figures or figures.get("p99_ms") is None else f"{figures['p99_ms']:.0f}"


def markdown_table(results: dict[str, Any]) -> str:
    header = ("| balancer | fault | requests | failed (read/write) | by class | 429 | resent "
              "| p99 before / during / after ms | detect s | recover s | rejoined s | audit |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for kind, kind_result in results["kinds"].items():
        for name, fault in kind_result.get("faults", {}).items():
            figures = fault.get("figures")
            if fault.get("skipped"):
                continue
            if not figures:
                rows.append(f"| {kind} | {name} | error: {fault.get('error')} |" + " - |" * 9)
                continue
            total = figures["all"]
            classes = ", ".join(f"{k} {v}" for k, v in total["failed_by_class"].items() if v) or "-"
            audit_result = fault.get("audit", {})
            if "error" in audit_result:
                audit_text = "error"
            else:
                problems = [f"{k} {audit_result[k]}" for k in ("lost", "applied_twice", "refused_but_stored")
                            if audit_result.get(k)]
                if audit_result.get("quantities_match_movements") is False:
                    problems.append("quantities differ")
                audit_text = ("; ".join(problems) or "ok") + (
                    f" ({audit_result['failed_but_applied']} failed but applied)" if audit_result.get("failed_but_applied") else "")
            recover = fault.get("recover_s")
            if fault.get("recover_after_start_s") is not None:
                recover = f"{recover} ({fault['recover_after_start_s']} after start)"
            rows.append(
                f"| {kind} | {name} | {total['requests']} | {total['failed']} ({total['failed_by_kind']['read']}/"
                f"{total['failed_by_kind']['write']}) | {classes} | {total['rejected']['429']} "
                f"| {total['retried_stale_connection']} | {pair(figures['before'])} / {pair(figures['during'])} / "
                f"{pair(figures['after'])} | {fault.get('detect_s') if fault.get('detect_s') is not None else '-'} "
                f"| {recover if recover is not None else '-'} | {fault.get('rejoin_s') or '-'} | {audit_text} |")
    floods = [(kind, name, fault) for kind, kind_result in results["kinds"].items()
              for name, fault in kind_result.get("faults", {}).items()
              if name.startswith("flood_") and fault.get("findings", {}).get("flood")]
    if floods:
        rows += ["", "| balancer | flood (from one lab host) | what the flood got | the other client: 429 / failed "
                     "| the other client: p99 before / during ms |", "|---|---|---|---|---|"]
        for kind, name, fault in floods:
            flood = fault["findings"]["flood"]
            if flood["mode"] == "requests":
                got = (f"{flood['sent']} requests in {flood['seconds']} s: " +
                       ", ".join(f"{status} x{count}" for status, count in flood["statuses"].items()) +
                       (f"; errors {flood['errors']}" if flood["errors"] else ""))
            else:
                got = (f"{flood['opened']} of {flood['connections']} connections opened, {flood['closed_by_server']} "
                       f"closed by the balancer (median {flood['closed_after_s_median']} s), "
                       f"{flood['still_open_at_end']} still open after {flood['duration_s']:.0f} s")
            during = fault["figures"]["during"]
            rows.append(f"| {kind} | {name} | {got} | {during['rejected']['429']} / {during['failed']} "
                        f"| {pair(fault['figures']['before'])} / {pair(during)} |")
    pairs = [(kind, name, fault) for kind, kind_result in results["kinds"].items()
             for name, fault in kind_result.get("faults", {}).items() if fault.get("pair_failed")]
    if pairs:
        rows += ["", "| balancer | pair fault | failover s | failed: in flight / in the gap / after | resent "
                     "| failed, a client that retries | p99 during / after ms | holder after the old one came back |",
                 "|---|---|---|---|---|---|---|---|"]
        for kind, name, fault in pairs:
            findings, split = fault["findings"], fault["pair_failed"]
            after_undo = ", ".join(findings.get("holders_after_undo") or []) or "none"
            took_back = findings.get("failover_s") is not None and findings["old_holder"] in (findings.get("holders_after_undo") or [])
            failover = findings.get("failover_s")
            if failover is None:
                failover = (f"stayed; back in {findings['back_on_the_holder_s']}"
                            if findings.get("back_on_the_holder_s") is not None else "none")
            rows.append(f"| {kind} | {name} ({findings['old_holder']}) | {failover} "
                        f"| {split['in_flight']} / {split['in_the_gap']} / {split['after']} "
                        f"| {fault['figures']['all']['retried_stale_connection']} "
                        f"| {fault.get('failed_with_retry', '-')} "
                        f"| {pair(fault['figures']['during'])} / {pair(fault['figures']['after'])} "
                        f"| {after_undo}{' (took it back)' if took_back else ''} |")
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--before", type=float, default=15.0, help="seconds of load before each fault")
    parser.add_argument("--after", type=float, default=15.0, help="seconds of load after the recovery")
    parser.add_argument("--recover-timeout", type=float, default=120.0, help="seconds to wait for a recovery")
    parser.add_argument("--retry-failed", type=float, default=5.0,
                        help="seconds the load's client resends a request that got no answer, as a client that "
                             "retries idempotent requests does (loadgen.py --retry-failed); the tables count "
                             "each request's first failure, and the retrying client's failures apart "
                             "(default: %(default)s)")
    parser.add_argument("--host-down", type=float, default=20.0, help="seconds stop_host keeps the host down")
    parser.add_argument("--flood-seconds", type=float, default=20.0, help="seconds of each flood")
    parser.add_argument("--flood-rate", type=float, default=400.0, help="requests per second of the flood")
    parser.add_argument("--slow-seconds", type=float, default=30.0,
                        help="seconds of the slow flood (longer than the balancer's lb_client_request_timeout, 10)")
    parser.add_argument("--slow-connections", type=int, default=300, help="connections of the slow flood")
    zd.add_load_arguments(parser)
    parser.add_argument("--inventory", default="inventories/lab")
    parser.add_argument("--playbook-timeout", type=float, default=1800.0)
    parser.add_argument("--extra-var", action="append", default=[], metavar="NAME=VALUE",
                        help="another extra var for site.yml (value parsed as JSON when it is JSON)")
    parser.add_argument("--no-setup", dest="setup", action="store_false",
                        help="run on the lab as it is (one kind) instead of site.yml -e lb_kind=KIND first")
    parser.add_argument("--no-restore", dest="restore", action="store_false")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    # The load comes from one address: the app's per-address limit must not be what the figures show.
    args.app_rate_limit = max(600, math.ceil(args.rate * 60 * 4))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="faults: %(message)s")
    args = parse_args(argv)
    if shutil.which("ansible-playbook", path=zd.tool_environment()["PATH"]) is None:
        raise SystemExit("faults: ansible-playbook not found (make bootstrap makes .venv)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"faults-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.out_dir / f"faults-{stamp}.json"
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "kinds": {}}
    zd.handle_signals()
    failed = False
    try:
        lab = Lab.from_inventory(args.inventory)
        if lab.vip and args.url == DEFAULT_LOAD_URL:
            # A port published on 127.0.0.1 is bound to one container: the load goes to the floating address.
            args.url = f"http://{lab.vip}"
            log.info("a balancer pair: the load goes to its floating address, %s", args.url)
        for kind in args.kinds:
            kind_result: dict[str, Any] = {"faults": {}}
            results["kinds"][kind] = kind_result
            if args.setup:
                setup_vars = {"lb_kind": kind, "app_rate_limit_per_minute": args.app_rate_limit,
                              **zd.CONVERGE_VERSION, **zd.parse_extra_vars(args.extra_var)}
                setup = zd.run_playbook("site.yml", setup_vars,
                                        args.inventory, work_dir / f"{kind}-site.log", args.playbook_timeout)
                kind_result["setup"] = {"rc": setup.rc, "seconds": setup.seconds}
                if setup.rc != 0:
                    kind_result["error"] = f"site.yml -e lb_kind={kind} failed; see {setup.log}"
                    log.error("%s\n%s", kind_result["error"], zd.log_tail(setup.log))
                    failed = True
                    continue
            args.kind = kind
            for name in args.faults:
                if name in PAIR_FAULTS and lab.vip is None:
                    kind_result["faults"][name] = {"fault": name, "skipped": "one lb host: no floating address"}
                    continue
                lab.refresh_addresses()
                kind_result["faults"][name] = run_fault(name, kind, lab, args, work_dir)
                failed = failed or bool(kind_result["faults"][name].get("error"))
                zd.write_results(results, results_path)
        if args.restore and args.setup:
            restore_vars = {**zd.CONVERGE_VERSION,
                            **{k: v for k, v in zd.parse_extra_vars(args.extra_var).items() if k != "lb_kind"}}
            restore = zd.run_playbook("site.yml", restore_vars, args.inventory, work_dir / "restore-site.log",
                                      args.playbook_timeout)
            results["restore"] = {"rc": restore.rc, "seconds": restore.seconds}
    except zd.Interrupted as exc:
        results["interrupted"] = str(exc)
        failed = True
    except (RuntimeError, OSError) as exc:
        results["error"] = str(exc)
        log.error("%s", exc)
        failed = True
    finally:
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        zd.write_results(results, results_path)
    print(markdown_table(results))
    print(f"\nFigures: {results_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
