#!/usr/bin/env python3
"""The zero-downtime benchmark: the same open-loop load through each balancer while the app changes.

    .venv/bin/python scripts/bench/zero_downtime.py [--kinds nginx haproxy apache] [--rate 50]

For each balancer kind: `site.yml -e lb_kind=KIND` sets the lab up, then the cases run under the load
of loadgen.py (started, given --steady seconds, the playbook, --after seconds more, then stopped):

- control: site.yml again on the lab as it is (nothing to change): the load's latency while Ansible
           keeps the machine as busy as a deploy does, without any deploy (runs first, so the lab is
           still on the release site.yml set up);
- converge_config: site.yml with one app setting changed (app_log_level), on the inventory's version:
           every instance restarts through the rolling path (runs right after control, before any
           case changes the version);
- converge_failing_config: site.yml with a config --check-config accepts but readiness refuses (a wrong
           database password): expected to fail (rc != 0) after batch 1 went back to the config it ran;
- rolling: playbooks/rolling_deploy.yml to a new version (expected to succeed);
- naive:   scripts/bench/naive_restart.yml to another version, a plain serial restart (the baseline);
- failing: rolling_deploy.yml to a version whose readiness never passes (app_fail_readiness=true):
           the playbook is expected to fail (rc != 0) after rolling its first batch back;
- converge_version: site.yml -e app_converge_version=true after a deploy case: the converge rolls the
           fleet back to the inventory's version on purpose, batch by batch (issue 34; without the
           switch site.yml stops before any host changes).

Every playbook gets the same extra vars: lb_kind (a playbook that touches the balancer must not fall
back to the inventory's kind), the bench's app_rate_limit_per_minute (the app limits per client
address and all the load comes from one: a deploy that rendered the default limit would make the new
instances answer 429), and --extra-var. Versions are PEP 440 and new on every run: 1.<run-id>.<n>, the
broken one 1.<run-id>.<n>.dev1; their wheelhouses are built before any load (--no-prebuild: during the
deploy, inside its wall time).

--isolate-controller runs every playbook in a CPU cgroup of the smallest weight: Ansible, its forks and
podman then take the CPU only when the lab and the load generator leave some, as on a controller of its
own. The modules podman runs inside a lab container stay in that container's cgroup, so a host's own
share of the work still competes with its app, as on a real host.

--stage-first runs playbooks/stage_release.yml for the rolling and failing cases before their load
starts, so that the deploy window holds the batches and not the staging of the release.

Output: build/bench/zero_downtime-<timestamp>.json (every figure, rewritten after each case), the
records, marks and playbook logs under build/bench/zero_downtime-<timestamp>/, and a Markdown table
on stdout. Exit status 1 when a playbook did not end as expected. The load generator is always
stopped, whatever happens to the playbooks or to this script.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402  (the sibling module: records and summaries)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import balancers  # noqa: E402  (scripts/balancers.py: the balancer kinds)

log = logging.getLogger("zero_downtime")

REPO_ROOT = Path(__file__).resolve().parents[2]
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
ROLLING_PLAYBOOK = "playbooks/rolling_deploy.yml"
NAIVE_PLAYBOOK = "scripts/bench/naive_restart.yml"
STAGE_PLAYBOOK = "playbooks/stage_release.yml"
SITE_PLAYBOOK = "site.yml"
KINDS = balancers.kinds()
CASES = ("control", "converge_config", "converge_failing_config", "rolling", "naive", "failing", "converge_version")
# converge_config: the one app setting site.yml changes (issue 33), on the version the lab runs.
CONVERGE_CHANGE = {"app_log_level": "warning"}
# converge_failing_config: a config whose readiness fails, with a gate as short as the failing deploy's.
CONVERGE_FAILING = {"app_db_password": "not-the-database-password", "rollout_gate_timeout": 10}
# site.yml stops when the lab runs another version than the inventory's (issue 34): a kind's setup and
# the restore roll the lab to the inventory's version on purpose, batch by batch.
CONVERGE_VERSION = {"app_converge_version": True}
LOADGEN_START_TIMEOUT = 120.0
LOG_TAIL_LINES = 25


class Interrupted(Exception):
    """SIGTERM or SIGINT reached the driver."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: a playbook run under load, and whether it should succeed."""

    name: str
    playbook: str
    version: str
    extra_vars: dict[str, Any]
    expect_success: bool


def case_versions(run_id: int, kind_index: int) -> dict[str, str]:
    """New PEP 440 versions per kind and case, so that no run reuses an install of another."""
    base = kind_index * len(CASES)
    return {"rolling": f"1.{run_id}.{base + 1}", "naive": f"1.{run_id}.{base + 2}",
            "failing": f"1.{run_id}.{base + 3}.dev1"}


def build_cases(names: Sequence[str], versions: dict[str, str], common_vars: dict[str, Any]) -> list[Case]:
    """The cases to run, in the order of ``names``, each with its version and extra vars. The site.yml
    cases keep the version the lab runs when they start (the inventory's after the kind's setup, else the
    last good deploy's): site.yml stops rather than move a fleet to another version (issue 34)."""
    playbooks = {"control": SITE_PLAYBOOK, "rolling": ROLLING_PLAYBOOK, "naive": NAIVE_PLAYBOOK,
                 "failing": ROLLING_PLAYBOOK}
    site_changes = {"control": {}, "converge_config": CONVERGE_CHANGE, "converge_failing_config": CONVERGE_FAILING}
    cases = []
    running: dict[str, str] = {}
    for name in names:
        if name == "converge_version":
            cases.append(Case(name, SITE_PLAYBOOK, "", {**common_vars, **CONVERGE_VERSION}, expect_success=True))
            running = {}
            continue
        if name in site_changes:
            # control: site.yml on the lab as it is, Ansible as busy as during a deploy, but nothing changes.
            cases.append(Case(name, SITE_PLAYBOOK, "", {**common_vars, **running, **site_changes[name]},
                              expect_success=name != "converge_failing_config"))
            continue
        extra_vars = {**common_vars, "app_version": versions[name]}
        if name == "failing":
            extra_vars["app_fail_readiness"] = True
        else:
            running = {"app_version": versions[name]}
        cases.append(Case(name, playbooks[name], versions[name], extra_vars, expect_success=name != "failing"))
    return cases


# ---------------------------------------------------------------------------------------------
# Processes


def tool_environment() -> dict[str, str]:
    """The environment of the child processes: the repository's venv first on PATH, its ansible.cfg, the
    lab's vault password (unless one is given)."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_VAULT_PASSWORD_FILE", str(REPO_ROOT / "scripts" / "lab_vault.py"))
    venv_bin = REPO_ROOT / ".venv" / "bin"
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    return env


def stop_process(process: subprocess.Popen[Any], signum: int, grace: float) -> int | None:
    """Send ``signum`` to the process group, wait ``grace`` s, then kill it; return its exit status.

    The driver's own SIGINT/SIGTERM wait meanwhile, so that a second Ctrl-C cannot leave the child running.
    """
    if process.poll() is not None:
        return process.returncode
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        os.killpg(process.pid, signum)
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("process %d did not stop in %.0f s: killing it", process.pid, grace)
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    except ProcessLookupError:
        return process.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


CONTROLLER_CGROUP = "rollgate-bench-controller"


def controller_cgroup_procs() -> Path:
    """The cgroup.procs of a CPU cgroup with the smallest weight (cgroup v2 cpu.weight 1, v1 cpu.shares 2),
    made if need be: the place of the playbooks under --isolate-controller."""
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").is_file():
        if "cpu" not in (unified / "cgroup.controllers").read_text().split():
            raise RuntimeError("--isolate-controller: cgroup v2 without the cpu controller on this machine")
        if "cpu" not in (unified / "cgroup.subtree_control").read_text().split():
            (unified / "cgroup.subtree_control").write_text("+cpu")
        group, weight_file, weight = unified / CONTROLLER_CGROUP, "cpu.weight", "1"
    elif (unified / "cpu" / "cpu.shares").is_file():
        group, weight_file, weight = unified / "cpu" / CONTROLLER_CGROUP, "cpu.shares", "2"
    else:
        raise RuntimeError("--isolate-controller: no cgroup cpu controller under /sys/fs/cgroup on this machine")
    try:
        group.mkdir(exist_ok=True)
        (group / weight_file).write_text(weight)
    except OSError as exc:
        raise RuntimeError(f"--isolate-controller: cannot set up {group} ({exc}); run as root") from exc
    return group / "cgroup.procs"


def in_cgroup(command: list[str], procs: Path | None) -> list[str]:
    """``command``, run from inside the cgroup whose cgroup.procs is ``procs`` (unchanged when None)."""
    if procs is None:
        return command
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *command]


@dataclass
class PlaybookRun:
    rc: int
    seconds: float
    log: Path
    started: float
    ended: float


def run_playbook(playbook: str, extra_vars: dict[str, Any], inventory: str, log_path: Path,
                 timeout: float, cgroup_procs: Path | None = None) -> PlaybookRun:
    """ansible-playbook with the vars as one JSON -e (types kept), its output into ``log_path``; inside
    the cgroup of ``cgroup_procs`` when given."""
    if not (REPO_ROOT / playbook).is_file():
        raise FileNotFoundError(f"{playbook} does not exist in {REPO_ROOT}")
    command = ["ansible-playbook", "-i", inventory, playbook, "-e", json.dumps(extra_vars)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("running %s -e '%s' (log: %s)", playbook, json.dumps(extra_vars), log_path)
    started = time.time()
    with log_path.open("w", encoding="utf-8") as output:
        output.write(f"# {' '.join(command)}\n")
        output.flush()
        process = subprocess.Popen(in_cgroup(command, cgroup_procs), cwd=REPO_ROOT, env=tool_environment(),
                                   stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("%s ran longer than %.0f s: stopping it", playbook, timeout)
            stop_process(process, signal.SIGINT, 30)
            rc = -1
        except BaseException:
            # Ctrl-C or SIGTERM of the driver: stop the playbook too (ansible ends on SIGINT).
            stop_process(process, signal.SIGINT, 30)
            raise
    ended = time.time()
    return PlaybookRun(rc=rc, seconds=round(ended - started, 1), log=log_path, started=started, ended=ended)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LoadGenerator:
    """loadgen.py run in the background until stop(); its records land in ``records_path``."""

    def __init__(self, args: argparse.Namespace, records_path: Path, log_path: Path) -> None:
        self.records_path = records_path
        self.log_path = log_path
        retry_failed = getattr(args, "retry_failed", 0.0)
        self.drain_grace = args.timeout + retry_failed + 30
        self.command = [
            sys.executable, str(LOADGEN), "run", "--url", args.url, "--rate", str(args.rate),
            "--workers", str(args.workers), "--timeout", str(args.timeout),
            "--write-ratio", str(args.write_ratio), "--retry-failed", str(retry_failed),
            # Stopped by a signal: the limits only guard against a driver that died.
            "--duration", "7200", "--out", str(records_path)]
        self.process: subprocess.Popen[str] | None = None
        self._stderr: TextIO | None = None

    def start(self) -> float:
        """Start it and wait for its first scheduled request; return that unix time."""
        self._stderr = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(self.command, cwd=REPO_ROOT, env=tool_environment(), text=True,
                                        stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + LOADGEN_START_TIMEOUT
        # readline blocks; the generator logs in within seconds or exits (EOF).
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event.get("event") == "started":
                return float(event["time"])
        self.stop()
        raise RuntimeError(f"the load generator did not start; its log ({self.log_path}):\n{log_tail(self.log_path)}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM: it stops scheduling, lets the due requests finish and writes its records."""
        if self.process is None:
            return None
        rc = stop_process(self.process, signal.SIGTERM, self.drain_grace)
        if self.process.stdout:
            self.process.stdout.close()
        if self._stderr:
            self._stderr.close()
        self.process = None
        return rc


def sleep_with_load(seconds: float, generator: LoadGenerator) -> None:
    """Sleep, failing early if the load generator died meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not generator.alive():
            raise RuntimeError(f"the load generator exited early; its log ({generator.log_path}):\n"
                               f"{log_tail(generator.log_path)}")
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


# ---------------------------------------------------------------------------------------------
# The benchmark


def run_case(case: Case, kind: str, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Load, steady seconds, the playbook, after seconds, stop: the figures of each window."""
    stem = work_dir / f"{kind}-{case.name}"
    records_path = stem.with_suffix(".jsonl")
    result: dict[str, Any] = {
        "playbook": case.playbook, "version": case.version, "extra_vars": case.extra_vars,
        "expect_success": case.expect_success, "rc": None, "unexpected": True, "error": None,
        "deploy_seconds": None, "records": str(records_path), "log": str(stem) + ".playbook.log",
        "marks": str(stem) + ".marks.json", "figures": {}}
    if not (REPO_ROOT / case.playbook).is_file():
        result["error"] = f"{case.playbook} does not exist (yet): case skipped"
        log.error("%s/%s: %s", kind, case.name, result["error"])
        return result

    if args.stage_first and case.playbook == ROLLING_PLAYBOOK:
        stage = run_playbook(STAGE_PLAYBOOK, case.extra_vars, args.inventory, Path(str(stem) + ".stage.log"),
                             args.playbook_timeout, args.cgroup_procs)
        result["stage"] = {"rc": stage.rc, "seconds": stage.seconds, "log": str(stage.log)}
        if stage.rc != 0:
            result["error"] = f"{STAGE_PLAYBOOK} failed (rc={stage.rc}); see {stage.log}"
            log.error("%s/%s: %s\n%s", kind, case.name, result["error"], log_tail(stage.log))
            return result

    generator = LoadGenerator(args, records_path, Path(str(stem) + ".loadgen.log"))
    marks: dict[str, float] = {}
    try:
        marks["load_start"] = generator.start()
        log.info("%s/%s: load running, %.0f s of steady state", kind, case.name, args.steady)
        sleep_with_load(args.steady, generator)
        run = run_playbook(case.playbook, case.extra_vars, args.inventory, Path(result["log"]),
                           args.playbook_timeout, args.cgroup_procs)
        marks["deploy_start"], marks["deploy_end"] = run.started, run.ended
        result.update(rc=run.rc, deploy_seconds=run.seconds)
        log.info("%s/%s: %s ended rc=%d in %.1f s; %.0f s more of load", kind, case.name, case.playbook,
                 run.rc, run.seconds, args.after)
        sleep_with_load(args.after, generator)
    except RuntimeError as exc:
        result["error"] = str(exc)
        log.error("%s/%s: %s", kind, case.name, exc)
    finally:
        marks["load_stop"] = time.time()
        generator.stop()
        Path(result["marks"]).write_text(json.dumps(marks, indent=2) + "\n", encoding="utf-8")

    if result["rc"] is not None:
        succeeded = result["rc"] == 0
        result["unexpected"] = succeeded != case.expect_success
        if result["unexpected"]:
            expected = "succeed" if case.expect_success else "fail"
            result["error"] = (f"{case.playbook} was expected to {expected} but ended with rc={result['rc']}; "
                               f"see {result['log']}")
            log.error("%s/%s: %s\n%s", kind, case.name, result["error"], log_tail(Path(result["log"])))
    if records_path.is_file() and "deploy_start" in marks:
        records = loadgen.read_records(records_path)
        result["figures"] = {
            "steady": loadgen.summarize(records, marks["load_start"], marks["deploy_start"]),
            "during": loadgen.summarize(records, marks["deploy_start"], marks["deploy_end"]),
            "after": loadgen.summarize(records, marks["deploy_end"]),
            "all": loadgen.summarize(records),
        }
    return result


PREBUILD_PLAYBOOK = """\
---
# Written by scripts/bench/zero_downtime.py: the app role's wheelhouse build for each release, for the
# Python of every app host (read on the hosts, nothing changed there), run before the load so that no
# deploy's wall time includes a build.
- name: Build the benchmark's wheelhouses on the controller
  hosts: app
  gather_facts: false
  tasks:
    - name: Build the wheelhouse of each release
      ansible.builtin.include_role:
        name: app
        tasks_from: build
      vars:
        app_version: "{{ bench_version }}"
      loop: "{{ bench_versions }}"
      loop_control:
        loop_var: bench_version
"""


def prebuild(versions: Sequence[str], args: argparse.Namespace, work_dir: Path) -> None:
    playbook = work_dir / "prebuild.yml"
    playbook.write_text(PREBUILD_PLAYBOOK, encoding="utf-8")
    log.info("building the wheelhouses of %s", ", ".join(versions))
    run = run_playbook(str(playbook.relative_to(REPO_ROOT)), {"bench_versions": list(versions)},
                       args.inventory, work_dir / "prebuild.log", args.playbook_timeout, args.cgroup_procs)
    if run.rc != 0:
        raise RuntimeError(f"building the wheelhouses failed (rc={run.rc}):\n{log_tail(run.log)}")


def format_pair(figures: dict[str, Any] | None) -> str:
    if not figures or figures.get("p50_ms") is None:
        return "-"
    return f"{figures['p50_ms']:.0f} / {figures['p99_ms']:.0f}"


def markdown_table(results: dict[str, Any]) -> str:
    """One row per balancer and case."""
    # resent: a kept-alive connection the balancer closed before reading the request (a reload),
    # sent again once on a new one as browsers do; not a failure, but the price of a reload.
    header = ("| balancer | case | rc | deploy s | requests | failed | connect | reset | timeout | 5xx | 429 "
              "| resent | p50/p99 steady ms | p50/p99 during ms |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for kind, kind_result in results["kinds"].items():
        if kind_result.get("error"):
            rows.append(f"| {kind} | (set-up) | {kind_result['setup'].get('rc', '-')} |" + " - |" * 11)
        for case_name, case in kind_result["cases"].items():
            figures = case["figures"]
            total = figures.get("all")
            if not total:
                rc = case["rc"] if case["rc"] is not None else "-"
                rows.append(f"| {kind} | {case_name} | {rc} |" + " - |" * 11)
                continue
            failed = total["failed_by_class"]
            rc = f"{case['rc']}{' (!)' if case['unexpected'] else ''}"
            rows.append(
                f"| {kind} | {case_name} | {rc} | {case['deploy_seconds']} | {total['requests']} | {total['failed']} "
                f"| {failed['connect']} | {failed['reset']} | {failed['timeout']} | {failed['5xx']} "
                f"| {total['rejected']['429']} | {total['retried_stale_connection']} | {format_pair(figures.get('steady'))} "
                f"| {format_pair(figures.get('during'))} |")
    return "\n".join(rows)


def write_results(results: dict[str, Any], path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def default_run_id() -> int:
    # Month, day, hour, minute: a new number each minute of the year, leading zero dropped (PEP 440).
    return int(time.strftime("%m%d%H%M"))


def add_load_arguments(parser: argparse.ArgumentParser, rate: float = 50.0, workers: int = 40) -> None:
    """The options LoadGenerator reads (the benchmarks that run loadgen.py in the background share them)."""
    parser.add_argument("--rate", type=float, default=rate, help="requests per second (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=workers, help="load generator threads (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default: %(default)s)")
    parser.add_argument("--write-ratio", type=float, default=0.2, help="share of stock movements (default: %(default)s)")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the balancer (default: %(default)s)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="balancers, in order")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases, in order")
    parser.add_argument("--run-id", type=int, default=None,
                        help="number in the versions 1.<run-id>.<n> (default: MMDDhhmm of now)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of load before each playbook")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of load after each playbook")
    add_load_arguments(parser)
    parser.add_argument("--app-rate-limit", type=int, default=None,
                        help="app_rate_limit_per_minute during the bench, 0 for none "
                             "(default: 4 x the load's per-minute rate, at least 600)")
    parser.add_argument("--extra-var", action="append", default=[], metavar="NAME=VALUE",
                        help="another extra var for every playbook (value parsed as JSON when it is JSON)")
    parser.add_argument("--inventory", default="inventories/lab", help="(default: %(default)s)")
    parser.add_argument("--playbook-timeout", type=float, default=1800.0, help="seconds per playbook at most")
    parser.add_argument("--no-prebuild", dest="prebuild", action="store_false",
                        help="let each deploy build its wheelhouse (inside its wall time)")
    parser.add_argument("--no-restore", dest="restore", action="store_false",
                        help="leave the lab as the last case left it instead of running site.yml with the "
                             "inventory's settings at the end")
    parser.add_argument("--stage-first", action="store_true",
                        help="stage each rolling and failing case's release (playbooks/stage_release.yml) "
                             "before its load starts")
    parser.add_argument("--isolate-controller", action="store_true",
                        help="run the playbooks in a CPU cgroup of the smallest weight, as on a controller of their own")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "build" / "bench", help="(default: build/bench)")
    args = parser.parse_args(argv)
    if args.run_id is None:
        args.run_id = default_run_id()
    if args.run_id < 0:
        parser.error("--run-id must be 0 or more")
    if args.app_rate_limit is None:
        args.app_rate_limit = max(600, math.ceil(args.rate * 60 * 4))
    args.cgroup_procs = None
    if args.isolate_controller:
        try:
            args.cgroup_procs = controller_cgroup_procs()
        except RuntimeError as exc:
            parser.error(str(exc))
    return args


def parse_extra_vars(pairs: Sequence[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SystemExit(f"zero_downtime: --extra-var wants NAME=VALUE, got {pair!r}")
        try:
            extra[name] = json.loads(value)
        except json.JSONDecodeError:
            extra[name] = value
    return extra


def handle_signals() -> None:
    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="zero_downtime: %(message)s")
    args = parse_args(argv)
    if shutil.which("ansible-playbook", path=tool_environment()["PATH"]) is None:
        raise SystemExit("zero_downtime: ansible-playbook not found (make bootstrap makes .venv)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir = args.out_dir / f"zero_downtime-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.out_dir / f"zero_downtime-{stamp}.json"
    user_vars = parse_extra_vars(args.extra_var)
    if args.rate > 100 and "lb_rate_limit_per_second" not in user_vars:
        log.warning("--rate %.0f is above the balancer's per-address limit (lb_rate_limit_per_second, 100): "
                    "pass --extra-var lb_rate_limit_per_second=N", args.rate)
    if "rolling" in args.cases or "failing" in args.cases:
        if not (REPO_ROOT / ROLLING_PLAYBOOK).is_file():
            log.warning("%s does not exist: the rolling and failing cases will be skipped", ROLLING_PLAYBOOK)

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_id": args.run_id,
        "settings": {"kinds": args.kinds, "cases": args.cases, "steady_s": args.steady, "after_s": args.after,
                     "rate": args.rate, "workers": args.workers, "timeout_s": args.timeout,
                     "write_ratio": args.write_ratio, "url": args.url, "app_rate_limit_per_minute": args.app_rate_limit,
                     "extra_vars": user_vars, "inventory": args.inventory,
                     "isolate_controller": args.isolate_controller, "stage_first": args.stage_first},
        "kinds": {}}
    versions = {kind: case_versions(args.run_id, index) for index, kind in enumerate(args.kinds)}
    handle_signals()
    try:
        if args.prebuild:
            all_versions = [versions[kind][name] for kind in args.kinds for name in args.cases if name in versions[kind]]
            if all_versions:
                prebuild(all_versions, args, work_dir)
        for kind in args.kinds:
            common_vars = {"lb_kind": kind, "app_rate_limit_per_minute": args.app_rate_limit, **user_vars}
            kind_result: dict[str, Any] = {"setup": {}, "cases": {}, "error": None}
            results["kinds"][kind] = kind_result
            setup = run_playbook(SITE_PLAYBOOK, {**common_vars, **CONVERGE_VERSION}, args.inventory, work_dir / f"{kind}-site.log",
                                 args.playbook_timeout, args.cgroup_procs)
            kind_result["setup"] = {"rc": setup.rc, "seconds": setup.seconds, "log": str(setup.log)}
            if setup.rc != 0:
                kind_result["error"] = f"site.yml -e lb_kind={kind} failed (rc={setup.rc}); see {setup.log}"
                log.error("%s\n%s", kind_result["error"], log_tail(setup.log))
                write_results(results, results_path)
                continue
            for case in build_cases(args.cases, versions[kind], common_vars):
                kind_result["cases"][case.name] = run_case(case, kind, args, work_dir)
                write_results(results, results_path)
        if args.restore:
            restore = run_playbook(SITE_PLAYBOOK, dict(CONVERGE_VERSION), args.inventory, work_dir / "restore-site.log",
                                   args.playbook_timeout, args.cgroup_procs)
            results["restore"] = {"rc": restore.rc, "seconds": restore.seconds, "log": str(restore.log)}
            if restore.rc != 0:
                log.error("restoring the lab with site.yml failed (rc=%d); see %s", restore.rc, restore.log)
    except Interrupted as exc:
        results["interrupted"] = str(exc)
        log.error("interrupted by %s: the figures so far are in %s", exc, results_path)
    except (RuntimeError, FileNotFoundError) as exc:
        results["error"] = str(exc)
        log.error("%s", exc)
    finally:
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_results(results, results_path)

    print(markdown_table(results))
    print(f"\nFigures: {results_path}")
    unexpected = [f"{kind}/{name}" for kind, kind_result in results["kinds"].items()
                  for name, case in kind_result["cases"].items() if case["unexpected"]]
    failed_setups = [kind for kind, kind_result in results["kinds"].items() if kind_result["error"]]
    if unexpected or failed_setups or "error" in results or "interrupted" in results \
            or results.get("restore", {}).get("rc", 0) != 0:
        if unexpected:
            log.error("not as expected: %s", ", ".join(unexpected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
