#!/usr/bin/python3
"""Activate a release for some instances of SERVICE@.service on this host: stop them (each finishes the
requests it has), point CURRENT_LINK at RELEASE_DIR in one rename, start them. Print, as JSON, the state
before and after: where the link pointed and each instance's main PID, so the caller reports `changed`
by comparing the two.

Usage: activate_release.py SERVICE CURRENT_LINK RELEASE_DIR PORT [PORT...]

One call per host for all of its instances, where a module per unit and step would cost a round trip each.
"""

import json
import os
import subprocess
import sys


def state(link: str, units: list[str]) -> dict:
    result = subprocess.run(["systemctl", "show", "--property=MainPID", "--value", *units],
                            capture_output=True, text=True, check=True)
    pids = [int(line or 0) for line in result.stdout.split()]
    return {"current": os.readlink(link) if os.path.islink(link) else "", "pids": dict(zip(units, pids))}


def systemctl(verb: str, units: list[str]) -> None:
    result = subprocess.run(["systemctl", verb, *units], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"systemctl {verb} {' '.join(units)} failed ({result.returncode}): {result.stderr.strip()}")


def main() -> None:
    service, link, release, *ports = sys.argv[1:]
    if not ports:
        sys.exit("usage: activate_release.py SERVICE CURRENT_LINK RELEASE_DIR PORT [PORT...]")
    if not os.path.isdir(release):
        sys.exit(f"release directory {release} does not exist on this host: stage the release first")
    units = [f"{service}@{port}.service" for port in ports]
    before = state(link, units)
    systemctl("stop", units)
    # A new link beside the old one, renamed over it: `current` always points at a whole release.
    staged = f"{link}.next"
    if os.path.lexists(staged):
        os.unlink(staged)
    os.symlink(release, staged)
    os.replace(staged, link)
    systemctl("start", units)
    print(json.dumps({"before": before, "after": state(link, units)}))


if __name__ == "__main__":
    main()
