"""One stack, the balancers in turn.

A test that takes the `balancer` fixture (itself, or through a fixture that does) runs once per
balancer of testlib.stack().kinds; the others run once. The run goes balancer by balancer: every
per-kind test of the first balancer (the one the stack was converged with), then the stack is switched
to the next (playbooks/balancer.yml -v for the first switch, site.yml -v for the later ones, keeping the
fleet's version) and its per-kind tests run, and so on; the tests
that run once come last, on the last balancer, so that the secret scans read what every balancer and
every deploy wrote. A test marked `once_with_balancer(n)` runs once too, but in the part of the n-th
balancer (0-based; the last one when the run has fewer), after the part's first per-kind test, whose
`balancer` fixture switched the stack to it: the failure paths of the rolling deploy, spread so that each
balancer takes one, and the pair's failover. Within each part, the files' order holds (test_bad_input, test_security, test_stack,
test_upgrade), and each file's own order.
"""

from dataclasses import dataclass
import os
import subprocess
import time

import pytest

from testlib import active_kind, stack, switch_balancer, switch_runs


@dataclass(frozen=True)
class Balancer:
    """The balancer the stack runs for a per-kind test, and the run that switched the stack to it (None
    for the balancer the stack started with)."""

    kind: str
    switch: subprocess.CompletedProcess | None


# The switches take both of a user's ways: the first the lb role alone (`ansible-playbook
# playbooks/balancer.yml -e lb_kind=...`, 70 s cheaper alone), the later ones a whole site.yml (`make up
# LB_KIND=...`), whose runs test_security.py also reads for site.yml changing nothing on the other hosts.
FIRST_SWITCH, LATER_SWITCHES = "playbooks/balancer.yml", "site.yml"


@pytest.fixture(scope="session", autouse=True)
def releases_built():
    """scripts/run-molecule.sh (make test, make molecule) builds the releases the deploys install beside
    the first scenarios, and says so in the file RELEASES_BUILT names: wait for it (up to 15 min; it is
    there long before the stack's converge ends). Elsewhere (make lab-test) nothing to wait for."""
    marker = os.environ.get("RELEASES_BUILT")
    if not marker:
        return
    deadline = time.monotonic() + 900
    while not os.path.exists(marker):
        if time.monotonic() > deadline:
            pytest.fail(f"{marker} did not appear within 15 min: the upgrade releases were not built")
        time.sleep(2)
    with open(marker, encoding="utf-8") as stream:
        result = stream.read().strip()
    if result != "ok":
        pytest.fail(f"the upgrade releases were not built: {result}")


@pytest.fixture(scope="session", params=stack().kinds)
def balancer(request) -> Balancer:
    kind = request.param
    if kind == active_kind():
        return Balancer(kind, None)
    result = switch_balancer(kind, LATER_SWITCHES if switch_runs() else FIRST_SWITCH)
    if result.returncode != 0:
        pytest.fail(f"switching the stack to {kind} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return Balancer(kind, result)


def pytest_configure(config):
    config.addinivalue_line("markers", "once_with_balancer(n): run once, in the part of the n-th balancer (0-based)")


def per_kind(item: pytest.Item) -> bool:
    """Whether a collected test runs once per balancer (it takes the `balancer` fixture)."""
    callspec = getattr(item, "callspec", None)
    return bool(callspec and callspec.params.get("balancer"))


def kind_of(item: pytest.Item) -> str | None:
    """The balancer whose part a collected test runs in; None for a test that runs once, last."""
    if per_kind(item):
        return item.callspec.params["balancer"]
    marker = item.get_closest_marker("once_with_balancer")
    if marker:
        kinds = stack().kinds
        return kinds[min(marker.args[0], len(kinds) - 1)]
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]):
    """Balancer by balancer, then the tests that run once, each part in the order of collection: after
    pytest's own reordering, which groups by parameter but knows nothing of the switches' cost."""
    kinds = list(stack().kinds)
    order = {id(item): index for index, item in enumerate(items)}
    yield
    # A test marked once_with_balancer(n) runs with the live balancer: it goes after the first per-kind test of
    # its balancer, whose `balancer` fixture switches the stack to it (the first balancer needs no switch).
    first_per_kind: dict[str, int] = {}
    for item in items:
        if per_kind(item):
            first_per_kind.setdefault(kind_of(item), order[id(item)])

    def key(item: pytest.Item) -> tuple[int, int, int]:
        kind = kind_of(item)
        if kind is None:
            return (len(kinds), order[id(item)], 0)
        if per_kind(item):
            return (kinds.index(kind), order[id(item)], 0)
        return (kinds.index(kind), max(order[id(item)], first_per_kind.get(kind, -1)), 1)

    items.sort(key=key)
