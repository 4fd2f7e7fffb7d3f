#!/usr/bin/env python3
"""The stack tests against the running lab: `make lab-test [KIND=haproxy] [TESTS=test_upgrade.py::...]`.

    python scripts/lab_test.py [--kind nginx|haproxy|apache] [TEST ...]

The stack tests (molecule/resources/stack_tests) are the files the molecule `stack` scenario runs with
each balancer in turn; here they run against the lab that `make up` made and keeps, with no copy, with
the one balancer KIND: testlib.stack() gives them the lab's inventory, host names, ports and secrets
(STACK_TARGET=lab), and the tests that run once in the scenario run here too.

1. Checks, before anything changes: KIND is a known balancer, each TEST names a file of the stack
   tests, the lab is up (every inventory host running) with the two app hosts the tests expect, and the
   whole fleet runs one version.
2. When the lab's balancer is not KIND (or not the lab's own kind, without --kind), switches it:
   .cache/lab-lb-kind is set to KIND, then `site.yml -e lb_kind=KIND -e app_version=<the fleet's
   version>`, so that the switch never deploys another version. Per-task times go to its log.
3. Runs pytest on the TESTs (default: every stack test) with --durations=0.
4. Whatever the tests did or however they ended, puts the fleet back on the inventory's app_version with
   a rolling deploy (playbooks/rolling_deploy.yml) when it runs another: the lab is left serving.

Logs: .cache/lab-test/. The time of each step is printed at the end and kept in
.cache/lab-test/last.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import balancers  # noqa: E402  (scripts/balancers.py: the balancer kinds)

REPO = Path(__file__).resolve().parents[1]
STACK_TESTS = REPO / "molecule" / "resources" / "stack_tests"
LAB_INVENTORY = REPO / "inventories" / "lab"
KIND_FILE = REPO / ".cache" / "lab-lb-kind"
LOG_DIR = REPO / ".cache" / "lab-test"
KINDS = balancers.kinds()
# The service each kind runs on the lb host.
SERVICES = {kind: balancers.service(kind) for kind in KINDS}
# The stack tests name the lab's hosts app1 and app2 and expect their capacities 1 and 3.
EXPECTED_APP_HOSTS = ["app1", "app2"]
# The balancer's ports on this machine (inventories/lab/host_vars/lb1.yml).
HTTP_PORT, HTTPS_PORT = 8080, 8443


class LabTestError(Exception):
    """Bad input or a lab that is not ready: the message says what to do. Nothing was changed."""


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise LabTestError(f"make lab-test: KIND={kind!r} is not a balancer rollgate knows: choose one of "
                           f"{', '.join(KINDS)} (make lab-test KIND=haproxy)")


def test_paths(tests: list[str]) -> list[str]:
    """pytest arguments for TESTS given as `test_upgrade.py[::name]`, relative to the stack tests (or to
    the checkout); every stack test when none is given."""
    if not tests:
        return [str(STACK_TESTS)]
    known = sorted(path.name for path in STACK_TESTS.glob("test_*.py"))
    paths = []
    for test in tests:
        file_part, _, rest = test.partition("::")
        name = Path(file_part).name
        if name not in known or not (Path(file_part).parent in (Path("."), STACK_TESTS.relative_to(REPO))):
            raise LabTestError(f"make lab-test: TESTS names {file_part!r}, which is not a stack test: use one of "
                               f"{', '.join(known)}, optionally with ::test_name")
        paths.append(str(STACK_TESTS / name) + (f"::{rest}" if rest else ""))
    return paths


def lab_inventory() -> dict:
    result = subprocess.run([sys.executable, str(LAB_INVENTORY / "hosts.py"), "--list"], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise LabTestError(result.stderr.strip() or result.stdout.strip())
    return json.loads(result.stdout)


def missing_hosts(expected: list[str], running: dict[str, str]) -> list[str]:
    """The expected hosts that are not running, each with its state."""
    return [f"{name} ({running.get(name, 'absent')})" for name in expected if running.get(name) != "running"]


def check_lab_is_up(inventory: dict) -> None:
    hosts = sorted(inventory["_meta"]["hostvars"])
    if shutil.which("podman") is None:
        raise LabTestError("make lab-test needs the running lab, and podman is not installed here: run make up first")
    listing = subprocess.run(["podman", "ps", "--all", "--format", "json"], capture_output=True, text=True, check=False)
    running = {name: container["State"] for container in json.loads(listing.stdout or "[]")
               for name in container["Names"]} if listing.returncode == 0 else {}
    missing = missing_hosts(hosts, running)
    if listing.returncode != 0 or missing:
        raise LabTestError(f"make lab-test needs the running lab, and these lab hosts are not running: "
                           f"{', '.join(missing) or listing.stderr.strip()}. Run make up first.")
    if inventory["app"]["hosts"] != EXPECTED_APP_HOSTS:
        raise LabTestError(f"make lab-test runs the stack tests, which expect the lab's two app hosts "
                           f"{' and '.join(EXPECTED_APP_HOSTS)}; this lab has {len(inventory['app']['hosts'])}: "
                           "run make up APP_HOSTS=2 first")


def podman_exec(host: str, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", host, *command], capture_output=True, text=True, timeout=timeout,
                          check=False)


def fleet_versions(inventory: dict) -> dict[str, str]:
    """The release each app host's `current` points at (its directory is named by the version)."""
    versions = {}
    for host in inventory["app"]["hosts"]:
        target = podman_exec(host, "readlink", "/opt/inventory/current").stdout.strip()
        versions[host] = Path(target).name if target else "(no release)"
    return versions


def one_version(versions: dict[str, str]) -> str:
    if len(set(versions.values())) != 1:
        raise LabTestError("make lab-test: the lab's app hosts run different versions ("
                           + ", ".join(f"{host} {version}" for host, version in sorted(versions.items()))
                           + "): finish the deploy first, for example make deploy VERSION=<the inventory's version>")
    return next(iter(versions.values()))


def serving_kind(lb_host: str) -> str | None:
    """The balancer kind whose service is active on the lb host, if exactly one is."""
    active = [kind for kind, service in SERVICES.items()
              if podman_exec(lb_host, "systemctl", "is-active", "--quiet", service).returncode == 0]
    return active[0] if len(active) == 1 else None


def inventory_version() -> str:
    """app_version as the lab inventory gives it to app1 (group_vars and host_vars applied)."""
    result = subprocess.run(["ansible-inventory", "-i", str(LAB_INVENTORY), "--host", EXPECTED_APP_HOSTS[0]],
                            capture_output=True, text=True, check=True, cwd=REPO)
    return str(json.loads(result.stdout)["app_version"])


def run_logged(command: list[str], log: Path, environment: dict | None = None) -> tuple[int, float]:
    """Run a command with its output in `log`; (exit status, seconds)."""
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as stream:
        code = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPO, env=environment,
                              check=False).returncode
    return code, round(time.monotonic() - started, 1)


def playbook_env(kind: str) -> dict:
    """The environment of the lab's playbooks and tests: the lab's vault password unless one is given."""
    return {"ANSIBLE_VAULT_PASSWORD_FILE": str(REPO / "scripts" / "lab_vault.py"), **os.environ,
            "ROLLGATE_LB_KIND": kind, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "ANSIBLE_FORCE_COLOR": "0"}


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", help="the balancer to test: nginx, haproxy or apache (default: the lab's own)")
    parser.add_argument("tests", nargs="*", help="stack test files or tests, e.g. test_upgrade.py::test_rolling_deploy_succeeds")
    args = parser.parse_args(argv)
    times: dict[str, float] = {}
    started = time.monotonic()
    try:
        check_kind(args.kind)
        paths = test_paths(args.tests)
        inventory = lab_inventory()
        kind = args.kind or inventory["all"]["vars"]["lb_kind"]
        check_lab_is_up(inventory)
        fleet_version = one_version(fleet_versions(inventory))
        wanted_version = inventory_version()
    except LabTestError as error:
        print(error, file=sys.stderr)
        return 2
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    times["checks"] = round(time.monotonic() - started, 1)
    lb_host = inventory["lb"]["hosts"][0]
    environment = playbook_env(kind)

    serving = serving_kind(lb_host)
    if serving != kind or inventory["all"]["vars"]["lb_kind"] != kind:
        print(f"lab-test: switching the lab's balancer from {serving or 'none'} to {kind} "
              f"(site.yml, keeping version {fleet_version}); log: .cache/lab-test/switch-{kind}.log", flush=True)
        KIND_FILE.write_text(kind + "\n", encoding="utf-8")
        log = LOG_DIR / f"switch-{kind}.log"
        code, times["switch"] = run_logged(["ansible-playbook", "-i", str(LAB_INVENTORY), "site.yml",
                                            "-e", f"lb_kind={kind}", "-e", f"app_version={fleet_version}"],
                                           log, environment)
        if code != 0:
            print(tail(log), file=sys.stderr)
            print(f"lab-test: switching to {kind} failed after {times['switch']} s (log: {log})", file=sys.stderr)
            return 1
    else:
        times["switch"] = 0.0
        print(f"lab-test: the lab already serves through {kind}", flush=True)

    code = 1
    try:
        print(f"lab-test: stack tests on the lab ({kind}): {' '.join(args.tests) or 'all'}", flush=True)
        test_started = time.monotonic()
        code = subprocess.run(
            ["pytest", "-p", "no:cacheprovider", "--rootdir", str(REPO / "molecule"), "--durations=0", "-q",
             "-o", "console_output_style=classic", *paths],
            cwd=REPO, env=dict(environment, STACK_TARGET="lab", STACK_LB_KIND=kind, STACK_HTTP_PORT=str(HTTP_PORT),
                               STACK_HTTPS_PORT=str(HTTPS_PORT)), check=False).returncode
        times["tests"] = round(time.monotonic() - test_started, 1)
    finally:
        now = one_version_or_none(inventory)
        if now != wanted_version:
            print(f"lab-test: the fleet runs {now or 'several versions'}: a rolling deploy back to the inventory's "
                  f"{wanted_version}; log: .cache/lab-test/restore.log", flush=True)
            log = LOG_DIR / "restore.log"
            restore_code, times["restore"] = run_logged(
                ["ansible-playbook", "-i", str(LAB_INVENTORY), "playbooks/rolling_deploy.yml",
                 "-e", f"app_version={wanted_version}"], log, environment)
            if restore_code != 0:
                print(tail(log), file=sys.stderr)
                print(f"lab-test: the rolling deploy back to {wanted_version} failed (log: {log})", file=sys.stderr)
                code = code or 1
        else:
            times["restore"] = 0.0
        times["total"] = round(time.monotonic() - started, 1)
        summary = {"kind": kind, "tests": args.tests or ["all"], "exit": code, "seconds": times}
        (LOG_DIR / "last.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print("lab-test: " + ", ".join(f"{step} {seconds} s" for step, seconds in times.items())
              + f"; {'passed' if code == 0 else 'FAILED'}", flush=True)
    return code


def one_version_or_none(inventory: dict) -> str | None:
    versions = set(fleet_versions(inventory).values())
    return versions.pop() if len(versions) == 1 else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
