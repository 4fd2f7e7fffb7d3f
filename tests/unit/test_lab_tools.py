"""The lab's test tooling: scripts/lab_test.py (make lab-test), the lab inventory's settings and
scripts/molecule_phases.py. Pure functions only; make lab-test itself runs against the lab."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab_test = load("scripts/lab_test.py", "lab_test")
phases = load("scripts/molecule_phases.py", "molecule_phases")
hosts = load("inventories/lab/hosts.py", "lab_hosts")


def test_the_lab_tools_know_every_balancer_the_role_takes():
    """make up LB_KIND= (hosts.py) and make lab-test KIND= (lab_test.py) read the balancers from
    scripts/balancers.py, which must be lb_kind's choices in the lb role's argument spec."""
    specs = yaml.safe_load((REPO / "roles" / "lb" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    choices = specs["argument_specs"]["main"]["options"]["lb_kind"]["choices"]
    assert sorted(hosts.KINDS) == sorted(choices) and sorted(lab_test.KINDS) == sorted(choices)


@pytest.mark.parametrize("kind", ["nginx", "haproxy", "apache", None])
def test_a_known_kind_or_none_passes(kind):
    lab_test.check_kind(kind)


@pytest.mark.parametrize("kind", ["traefik", "NGINX", ""])
def test_an_unknown_kind_names_the_three_kinds(kind):
    with pytest.raises(lab_test.LabTestError, match="choose one of apache, haproxy, nginx"):
        lab_test.check_kind(kind)


def test_no_tests_means_every_stack_test():
    assert lab_test.test_paths([]) == [str(lab_test.STACK_TESTS)]


@pytest.mark.parametrize("given", ["test_upgrade.py::test_rolling_deploy_succeeds",
                                   "molecule/resources/stack_tests/test_upgrade.py::test_rolling_deploy_succeeds"])
def test_a_test_is_named_in_the_stack_tests_folder(given):
    assert lab_test.test_paths([given]) == [
        f"{lab_test.STACK_TESTS}/test_upgrade.py::test_rolling_deploy_succeeds"]


@pytest.mark.parametrize("given", ["test_nope.py", "tests/unit/test_rollout.py", "../stack_tests/test_stack.py::x"])
def test_a_test_outside_the_stack_tests_names_the_files(given):
    files = sorted(path.name for path in Path(lab_test.STACK_TESTS).glob("test_*.py"))
    assert "test_stack.py" in files
    with pytest.raises(lab_test.LabTestError, match=re.escape("use one of " + ", ".join(files) + ",")):
        lab_test.test_paths([given])


def test_hosts_that_are_not_running_are_named_with_their_state():
    running = {"lb1": "running", "app1": "exited"}
    assert lab_test.missing_hosts(["lb1", "app1", "app2"], running) == ["app1 (exited)", "app2 (absent)"]
    assert lab_test.missing_hosts(["lb1"], running) == []


def test_a_fleet_on_one_version_gives_it_and_a_mixed_one_is_refused():
    assert lab_test.one_version({"app1": "1.0.0", "app2": "1.0.0"}) == "1.0.0"
    with pytest.raises(lab_test.LabTestError, match="app1 1.0.0, app2 1.1.0"):
        lab_test.one_version({"app2": "1.1.0", "app1": "1.0.0"})


# Every lab setting pinned to its default, so that the settings this checkout keeps under .cache/ (a
# developer's `make up LB_HOSTS=2`) do not leak in; each test overrides what it checks.
LAB_DEFAULTS = {"ROLLGATE_APP_HOSTS": "2", "ROLLGATE_LB_KIND": "nginx", "ROLLGATE_LB_HOSTS": "1",
                "ROLLGATE_LAB_CONNECTION": "podman", "ROLLGATE_LAB_DEBIAN": "12"}


def lab_inventory(environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "inventories/lab/hosts.py"), "--list"], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **LAB_DEFAULTS, **environment}, check=False)


def test_a_lab_pair_gets_lb2_and_the_floating_address_and_a_bad_count_is_named():
    listing = json.loads(lab_inventory({"ROLLGATE_LB_HOSTS": "2"}).stdout)
    assert listing["lb"]["hosts"] == ["lb1", "lb2"]
    assert listing["lb"]["vars"]["lb_vip"].endswith(".250")
    # lb2 after the largest app host: resizing the app hosts never moves it.
    assert listing["_meta"]["hostvars"]["lb2"]["lab_host_number"] == 203
    assert json.loads(lab_inventory({}).stdout)["lb"] == {"hosts": ["lb1"], "vars": {}}
    result = lab_inventory({"ROLLGATE_LB_HOSTS": "4"})
    assert result.returncode != 0
    assert "LB_HOSTS (from ROLLGATE_LB_HOSTS) must be a whole number from 1 to 3, got '4'" in result.stderr


def test_the_lab_kind_comes_from_the_environment_first():
    listing = json.loads(lab_inventory({"ROLLGATE_LB_KIND": "haproxy", "ROLLGATE_APP_HOSTS": "2"}).stdout)
    assert listing["all"]["vars"]["lb_kind"] == "haproxy"


def test_an_unknown_lab_kind_names_the_setting_and_the_kinds():
    result = lab_inventory({"ROLLGATE_LB_KIND": "squid", "ROLLGATE_APP_HOSTS": "2"})
    assert result.returncode != 0
    assert "balancer kind (from ROLLGATE_LB_KIND) must be one of apache, haproxy, nginx, got 'squid'" in result.stderr


def test_a_two_host_lab_has_the_stack_scenarios_capacities():
    capacities = {name: variables["app_capacity"] for name, variables in hosts.inventory(2)["_meta"]["hostvars"].items()
                  if name.startswith("app")}
    assert capacities == {"app1": 1, "app2": 3}
    assert [hosts.inventory(20)["_meta"]["hostvars"][f"app{n}"]["app_capacity"] for n in (1, 2, 3)] == [4, 2, 1]


def test_phases_last_until_the_next_starts_and_a_repeated_phase_is_numbered():
    log = ["1764790000 INFO     stack_nginx \u279c destroy: Executing",
           "1764790003 INFO     stack_nginx \u279c create: Executing",
           "1764790040 noise",
           "1764790050 \x1b[1mINFO\x1b[0m     [stack_nginx > converge] Executing",
           "1764790400 INFO     stack_nginx > destroy: Executing",
           "1764790420 the end",
           "not stamped"]
    assert phases.phases(log) == {"stack_nginx": {"destroy": 3, "create": 47, "converge": 350, "destroy#2": 20}}


def test_the_phase_table_has_a_column_per_phase_and_a_total():
    text = phases.table({"stack_nginx": {"create": 20, "converge": 248}, "smoke": {"create": 9, "verify": 9}})
    assert text.splitlines() == ["scenario     create  converge  verify  total",
                                 "stack_nginx      20       248            268",
                                 "smoke             9                 9     18"]


def test_the_ssh_lab_reaches_every_host_as_deploy_over_ssh_with_host_keys_checked():
    listing = json.loads(lab_inventory({"ROLLGATE_LAB_CONNECTION": "ssh", "ROLLGATE_APP_HOSTS": "2"}).stdout)
    assert sorted(listing["lab_ssh"]["hosts"]) == ["app1", "app2", "db1", "lb1", "redis1"]
    for variables in listing["_meta"]["hostvars"].values():
        assert variables["ansible_connection"] == "ssh"
        assert variables["ansible_user"] == "deploy"
        assert variables["ansible_host"] == "{{ lab_address }}"
        assert "-o UserKnownHostsFile={{ lab_ssh_dir }}/known_hosts" in variables["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=no" not in variables["ansible_ssh_common_args"]


def test_the_podman_lab_has_no_ssh_group_and_keeps_the_group_vars_connection():
    listing = json.loads(lab_inventory({"ROLLGATE_LAB_CONNECTION": "podman", "ROLLGATE_APP_HOSTS": "2"}).stdout)
    assert "lab_ssh" not in listing
    assert all("ansible_connection" not in variables for variables in listing["_meta"]["hostvars"].values())


def test_an_unknown_lab_connection_names_the_setting_and_the_choices():
    result = lab_inventory({"ROLLGATE_LAB_CONNECTION": "telnet"})
    assert result.returncode != 0
    assert "connection (from ROLLGATE_LAB_CONNECTION) must be one of podman, ssh, got 'telnet'" in result.stderr


def test_the_lab_commands_get_the_lab_vault_password_unless_one_is_given(monkeypatch):
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("ANSIBLE_CONFIG", "/elsewhere/ansible.cfg")
    environment = lab_test.playbook_env("haproxy")
    assert environment["ANSIBLE_VAULT_PASSWORD_FILE"] == str(REPO / "scripts" / "lab_vault.py")
    assert (environment["ROLLGATE_LB_KIND"], environment["ANSIBLE_CONFIG"]) == ("haproxy", str(REPO / "ansible.cfg"))
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", "/mine")
    assert lab_test.playbook_env("nginx")["ANSIBLE_VAULT_PASSWORD_FILE"] == "/mine"


def images(settings: dict[str, str]) -> dict[str, str]:
    listing = json.loads(lab_inventory(settings).stdout)
    return {host: variables["lab_image"].rsplit(":", 1)[1] for host, variables in listing["_meta"]["hostvars"].items()}


def test_the_lab_runs_debian_12_unless_told_and_a_mixed_lab_puts_every_second_app_host_on_13():
    # "12" given, not left empty: an empty setting reads the developer's .cache/lab-debian (the default's own test
    # would depend on the lab the machine runs).
    assert set(images({"ROLLGATE_LAB_DEBIAN": "12", "ROLLGATE_APP_HOSTS": "2"}).values()) == {"bookworm"}
    assert set(images({"ROLLGATE_LAB_DEBIAN": "13", "ROLLGATE_APP_HOSTS": "2"}).values()) == {"trixie"}
    assert images({"ROLLGATE_LAB_DEBIAN": "mixed", "ROLLGATE_APP_HOSTS": "4"}) == {
        "lb1": "bookworm", "redis1": "bookworm", "db1": "bookworm",
        "app1": "bookworm", "app2": "trixie", "app3": "bookworm", "app4": "trixie"}


def test_an_unknown_lab_debian_release_names_the_setting_and_the_choices():
    result = lab_inventory({"ROLLGATE_LAB_DEBIAN": "11"})
    assert result.returncode != 0
    assert "Debian release (from ROLLGATE_LAB_DEBIAN) must be one of 12, 13, mixed, got '11'" in result.stderr
