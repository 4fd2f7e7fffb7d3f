#!/usr/bin/python3
"""nginx's view of its backends, from the server lines of the live nginx.conf (open-source nginx has no
runtime API), as JSON {name: {weight, state}}. The role's template ends each server line with the
backend's name (`# app1_8000`), which stays right whatever address the line gives.

Usage: view.py SETTINGS_JSON   ({"config_path", "pid_path"})

An nginx that does not run has no view: the file alone would say it serves (its config stays when the
lab switches to another kind). Nor has one whose config file changed after its last successful reload
(the start of its newest worker: a reload that fails keeps the old workers): the file would then say
what nginx does not serve.
"""

import json
import os
import re
import sys
import time

# /proc's process start times are in clock ticks after boot, and boot's time is in whole seconds.
START_TIME_SLACK = 1.0
SERVER_LINE = re.compile(r"\s*server\s+\S+\s+(?P<parameters>[^;]*);\s*#\s*(?P<name>\S+)")


def stale_config(config_mtime: float, newest_worker_start: float | None) -> str | None:
    """Why the config file cannot be taken for what nginx serves, or None when it can."""
    if newest_worker_start is None:
        return "nginx runs no worker process"
    if config_mtime > newest_worker_start + START_TIME_SLACK:
        return ("its config file changed after its last successful reload (file written "
                f"{time.strftime('%H:%M:%S', time.gmtime(config_mtime))} UTC, workers started "
                f"{time.strftime('%H:%M:%S', time.gmtime(newest_worker_start))} UTC): a reload failed or is "
                "pending; run nginx -t, then make balancer")
    return None


def newest_child_start(parent: int) -> float | None:
    """The start (epoch seconds) of the newest process whose parent is ``parent``, from /proc."""
    with open("/proc/stat", encoding="ascii") as stat:
        boot = next(float(line.split()[1]) for line in stat if line.startswith("btime "))
    ticks = os.sysconf("SC_CLK_TCK")
    starts = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the listing
        # After the command's ")": state, ppid, ... starttime is the 20th.
        if int(fields[1]) == parent:
            starts.append(boot + int(fields[19]) / ticks)
    return max(starts, default=None)


def main() -> None:
    settings = json.loads(sys.argv[1])
    try:
        with open(settings["pid_path"], encoding="ascii") as pid_file:
            master = int(pid_file.read().strip())
        os.kill(master, 0)
    except (OSError, ValueError) as error:
        sys.exit(f"nginx does not run ({settings['pid_path']}: {error})")
    problem = stale_config(os.stat(settings["config_path"]).st_mtime, newest_child_start(master))
    if problem:
        sys.exit(f"nginx's view is unknown: {problem}")
    view = {}
    with open(settings["config_path"], encoding="utf-8") as conf:
        for line in conf:
            match = SERVER_LINE.match(line)
            if match and "weight=" in match["parameters"]:
                weight = re.search(r"weight=(\d+)", match["parameters"]).group(1)
                state = "drained (down)" if re.search(r"\bdown\b", match["parameters"]) else "in rotation"
                view[match["name"]] = {"weight": weight, "state": state}
    print(json.dumps(view))


if __name__ == "__main__":
    main()
