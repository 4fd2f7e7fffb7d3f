#!/usr/bin/python3
"""Print, as JSON, the state of the instances of SERVICE@.service on this host.

Usage: instances.py SERVICE RELEASE_DIR ENV_LINK CONFIG_FILE UNIT_FILE PORT [PORT...]

stale_ports: the listed instances that run, but from another release than RELEASE_DIR, while ENV_LINK
(the link their config is read through) points elsewhere than CONFIG_FILE, or since before the link,
the config it points at or UNIT_FILE last changed. Reading the running state, rather than remembering
that a file changed, means a run that failed after a change still restarts what that change left behind.
unlisted_ports: instances on other ports that are loaded (running, say) or enabled.
"""

import glob
import json
import os
import re
import subprocess
import sys
import time


def main_process(unit: str) -> tuple[int, float]:
    """The unit's main PID (0 when it does not run) and when systemd started it, in seconds since the
    epoch. systemd's monotonic timestamp is exact to the microsecond, where /proc's start time counts
    from a boot time rounded down to the second: an instance started right after its config link was
    switched could read as started before the switch."""
    result = subprocess.run(["systemctl", "show", "--property=MainPID,ExecMainStartTimestampMonotonic", unit],
                            capture_output=True, text=True, check=False)
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    monotonic_us = int(values.get("ExecMainStartTimestampMonotonic") or 0)
    return int(values.get("MainPID") or 0), started_since_epoch(monotonic_us, time.time(), time.monotonic())


def started_since_epoch(monotonic_us: int, now: float, now_monotonic: float) -> float:
    """A CLOCK_MONOTONIC timestamp in microseconds, as seconds since the epoch."""
    return now - now_monotonic + monotonic_us / 1_000_000


def release_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        interpreter = cmdline.read().split(b"\0")[0].decode()
    return os.path.dirname(os.path.dirname(interpreter))


def known_ports(service: str) -> set[int]:
    """Ports of the instances systemd has loaded or that are enabled."""
    listed = subprocess.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", f"{service}@*.service"],
                            capture_output=True, text=True, check=False).stdout.split()
    enabled = [os.path.basename(path) for path in glob.glob(f"/etc/systemd/system/*.wants/{service}@*.service")]
    pattern = re.compile(rf"^{re.escape(service)}@([0-9]+)\.service$")
    return {int(match.group(1)) for name in listed + enabled if (match := pattern.match(name))}


def mtime(path: str, follow: bool = True) -> float:
    """When path last changed, 0 when it does not exist (a check-mode run on a fresh host)."""
    try:
        return os.stat(path, follow_symlinks=follow).st_mtime
    except FileNotFoundError:
        return 0.0


def config_state(env_link: str, config_file: str, unit_file: str) -> tuple[bool, float]:
    """Whether ENV_LINK points elsewhere than CONFIG_FILE (the config is staged to change), and when the
    instances' inputs last changed: the link's own time is when it was last switched, even back to an
    older config whose file is older than the instances."""
    moves = os.path.realpath(env_link) != os.path.realpath(config_file)
    return moves, max(mtime(env_link, follow=False), mtime(env_link), mtime(unit_file))


def main() -> int:
    service, release_dir, env_link, config_file, unit_file, *ports = sys.argv[1:]
    config_moves, changed_at = config_state(env_link, config_file, unit_file)
    instances = {}
    for port in ports:
        pid, started = main_process(f"{service}@{port}.service")
        if pid == 0:
            instances[port] = {"running": False, "stale": False}
            continue
        release = release_of(pid)
        instances[port] = {"running": True, "release": release, "started": started,
                           "stale": release != release_dir or config_moves or started < changed_at}
    stale = [int(port) for port, state in instances.items() if state["stale"]]
    unlisted = sorted(known_ports(service) - {int(port) for port in ports})
    print(json.dumps({"instances": instances, "stale_ports": stale, "unlisted_ports": unlisted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
