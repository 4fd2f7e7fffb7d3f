"""Testinfra hosts for molecule scenarios and the stack tests, reached through podman directly.

Molecule's inventory says ansible_connection=podman, which testinfra's ansible backend does not
know: it would fall back to one ansible process per command. podman:// runs `podman exec` instead.
A test module may set `testinfra_hosts` to a list of host or group names to run on fewer hosts; they
are resolved in the inventory of the stack under test (testlib.stack(): molecule's, or the lab's).
"""

import os
import sys

import pytest
import testinfra

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testlib import stack  # noqa: E402


def resolve_hosts(patterns: list[str]) -> list[str]:
    """Host names for host or group names."""
    groups = stack().groups()
    names: list[str] = []
    for pattern in patterns:
        found = [pattern] if pattern in groups["all"] else groups.get(pattern, [])
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
