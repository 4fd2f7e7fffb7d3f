"""testlib.stack(): what the stack tests learn of their target, a molecule stack scenario or the lab.
Read from a molecule-style inventory written here, and from the lab's own inventory files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule"))

import testlib  # noqa: E402

MOLECULE_INVENTORY = {
    "all": {"hosts": {"st-lb1": {}, "st-app1": {}, "st-app2": {}, "st-db1": {}},
            "children": {"ungrouped": {"hosts": {}}}},
    "lb": {"hosts": {"st-lb1": {}}},
    "app": {"hosts": {"st-app1": {}, "st-app2": {}}},
    "backends": {"children": {"db": {"hosts": {"st-db1": {}}}}},
}


@pytest.fixture
def molecule_stack(tmp_path, monkeypatch):
    (tmp_path / "inventory" / "group_vars").mkdir(parents=True)
    (tmp_path / "inventory" / "ansible_inventory.yml").write_text(yaml.safe_dump(MOLECULE_INVENTORY))
    (tmp_path / "inventory" / "group_vars" / "all").write_text(yaml.safe_dump({"app_admin_password": "from-molecule"}))
    monkeypatch.delenv("MOLECULE_INVENTORY_FILE", raising=False)
    monkeypatch.delenv("STACK_TARGET", raising=False)
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("STACK_LB_KIND", "nginx")
    monkeypatch.setenv("STACK_KINDS", "nginx haproxy apache")
    monkeypatch.setenv("STACK_HOST_PREFIX", "st-")
    monkeypatch.setenv("STACK_HTTP_PORT", "19010")
    monkeypatch.setenv("STACK_HTTPS_PORT", "19013")
    testlib.stack.cache_clear()
    yield testlib.stack()
    testlib.stack.cache_clear()


def test_a_molecule_stack_names_its_hosts_with_its_prefix_and_runs_the_balancers_in_turn(molecule_stack):
    assert (molecule_stack.target, molecule_stack.https_port) == ("molecule", 19013)
    assert (molecule_stack.kind, molecule_stack.kinds) == ("nginx", ("nginx", "haproxy", "apache"))
    assert testlib.host_name("lb1") == "st-lb1"
    assert molecule_stack.ansible_config.endswith("/ansible.cfg")


def test_a_molecule_stack_gives_its_groups_nested_ones_included(molecule_stack):
    groups = molecule_stack.groups()
    assert groups["app"] == ["st-app1", "st-app2"]
    assert groups["db"] == ["st-db1"] and groups["backends"] == ["st-db1"]
    assert groups["all"] == ["st-app1", "st-app2", "st-db1", "st-lb1"]


def test_a_molecule_stack_reads_the_group_vars_molecule_wrote(molecule_stack):
    assert testlib.group_vars() == {"app_admin_password": "from-molecule"}


def test_a_scenario_that_is_no_stack_still_resolves_its_hosts(molecule_stack, monkeypatch):
    for name in ("STACK_LB_KIND", "STACK_KINDS", "STACK_HOST_PREFIX"):
        monkeypatch.delenv(name)
    testlib.stack.cache_clear()
    assert testlib.host_name("app") == "app" and testlib.stack().groups()["lb"] == ["st-lb1"]


def test_the_lab_names_its_hosts_plainly_and_reads_its_own_inventory(monkeypatch):
    monkeypatch.setenv("STACK_TARGET", "lab")
    monkeypatch.setenv("STACK_LB_KIND", "haproxy")
    monkeypatch.setenv("STACK_HTTP_PORT", "8080")
    monkeypatch.setenv("STACK_HTTPS_PORT", "8443")
    monkeypatch.setenv("ROLLGATE_APP_HOSTS", "2")
    testlib.stack.cache_clear()
    try:
        lab = testlib.stack()
        assert (lab.target, lab.kind, testlib.host_name("app2")) == ("lab", "haproxy", "app2")
        assert lab.kinds == ("haproxy",)  # the lab runs the one balancer make lab-test switched it to
        assert lab.inventory == str(REPO / "inventories" / "lab")
        assert lab.groups()["app"] == ["app1", "app2"]
    finally:
        testlib.stack.cache_clear()

