"""Testinfra hosts for molecule scenarios, reached through podman directly.

Molecule's inventory says ansible_connection=podman, which testinfra's ansible backend does not
know: it would fall back to one ansible process per command. podman:// runs `podman exec` instead.
A test module may set `testinfra_hosts` to a list of host or group names to run on fewer hosts.
"""

import os

import pytest
import testinfra
import yaml


def _molecule_inventory() -> dict:
    inventory_dir = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
        os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory", "ansible_inventory.yml"
    )
    with open(inventory_dir, encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def _hosts_of(node: dict, group: str | None, selected: bool) -> list[str]:
    """Host names under an inventory node; only those inside `group` when one is named."""
    selected = selected or group is None
    names = list((node.get("hosts") or {}).keys()) if selected else []
    for child_name, child in (node.get("children") or {}).items():
        names += _hosts_of(child or {}, group, selected or child_name == group)
    return names


def resolve_hosts(patterns: list[str]) -> list[str]:
    """Host names for host or group names. Molecule writes each group at the top level of its
    inventory, beside `all`, so every top-level key is a group."""
    inventory = _molecule_inventory()
    every_host = _hosts_of(inventory.get("all", {}), None, True)
    names: list[str] = []
    for pattern in patterns:
        if pattern in every_host:
            found = [pattern]
        elif pattern == "all":
            found = every_host
        else:
            found = [host for node in inventory.values() for host in _hosts_of(node or {}, pattern, False)]
            found += _hosts_of(inventory.get(pattern) or {}, None, True)
        if not found:
            raise pytest.UsageError(f"testinfra_hosts names {pattern!r}, which the inventory does not have")
        names += [name for name in found if name not in names]
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host" in metafunc.fixturenames:
        patterns = getattr(metafunc.module, "testinfra_hosts", ["all"])
        names = sorted(resolve_hosts(patterns))
        metafunc.parametrize("host", names, ids=names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def host(request):
    return testinfra.get_host(f"podman://{request.param}")
