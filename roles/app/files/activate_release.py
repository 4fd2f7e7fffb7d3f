#!/usr/bin/python3
"""Activate a release and a config for some instances of SERVICE@.service on this host: stop them (each
finishes the requests it has), point CURRENT_LINK at RELEASE_DIR and ENV_LINK at CONFIG_FILE, each in one
rename, start them. Print, as JSON, the state before and after: where the links pointed and each
instance's main PID, so the caller reports `changed` by comparing the two.

Usage: activate_release.py SERVICE CURRENT_LINK RELEASE_DIR ENV_LINK CONFIG_FILE PORT [PORT...]

One call per host for all of its instances, where a module per unit and step would cost a round trip each.
"""

import json
import os
import subprocess
import sys

USAGE = "usage: activate_release.py SERVICE CURRENT_LINK RELEASE_DIR ENV_LINK CONFIG_FILE PORT [PORT...]"


def target(link: str) -> str:
    return os.readlink(link) if os.path.islink(link) else ""


def state(links: list[str], units: list[str]) -> dict:
    result = subprocess.run(["systemctl", "show", "--property=MainPID", "--value", *units],
                            capture_output=True, text=True, check=True)
    pids = [int(line or 0) for line in result.stdout.split()]
    return {"links": {link: target(link) for link in links}, "pids": dict(zip(units, pids))}


def systemctl(verb: str, units: list[str]) -> None:
    result = subprocess.run(["systemctl", verb, *units], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"systemctl {verb} {' '.join(units)} failed ({result.returncode}): {result.stderr.strip()}")


def switch(link: str, to: str) -> None:
    """A new link beside the old one, renamed over it: the link always points at a whole release or config."""
    if target(link) == to:
        return
    staged = f"{link}.next"
    if os.path.lexists(staged):
        os.unlink(staged)
    os.symlink(to, staged)
    os.replace(staged, link)


def main() -> None:
    if len(sys.argv) < 7:
        sys.exit(USAGE)
    service, current_link, release, env_link, config, *ports = sys.argv[1:]
    if not os.path.isdir(release):
        sys.exit(f"release directory {release} does not exist on this host: stage the release first")
    if not os.path.isfile(config):
        sys.exit(f"config {config} does not exist on this host: stage it first (the app role writes it)")
    units = [f"{service}@{port}.service" for port in ports]
    links = [current_link, env_link]
    before = state(links, units)
    systemctl("stop", units)
    switch(current_link, release)
    switch(env_link, config)
    systemctl("start", units)
    print(json.dumps({"before": before, "after": state(links, units)}))


if __name__ == "__main__":
    main()
