"""One list of the systems rollgate supports: the check before any host changes (check_reachable.yml) reads
playbooks/vars/supported_systems.yml, and each role with per-release facts knows each of them by its vars
files, vars/<distribution>-<major version>.yml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RELEASE_FILE = re.compile(r"^[A-Z][A-Za-z]+-[0-9]+\.yml$")


def supported() -> list[str]:
    return yaml.safe_load((REPO / "playbooks" / "vars" / "supported_systems.yml").read_text())[
        "check_reachable_supported_systems"]


def test_every_role_with_per_release_facts_knows_every_supported_system():
    roles = {path.parent.parent.name: {p.stem for p in path.parent.iterdir() if RELEASE_FILE.match(p.name)}
             for path in sorted(REPO.glob("roles/*/vars/*.yml")) if RELEASE_FILE.match(path.name)}
    assert {"postgresql", "redis", "lb"} <= set(roles)
    assert {role: set(supported()) - known for role, known in roles.items()} == {role: set() for role in roles}


def test_the_supported_systems_are_named_as_ansible_names_them():
    assert supported() and all(re.fullmatch(r"[A-Z][A-Za-z]+-[0-9]+", system) for system in supported())
