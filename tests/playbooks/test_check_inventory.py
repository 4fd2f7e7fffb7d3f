"""Bad inventories stop site.yml and the rolling deploy before any host is contacted, with a message
naming the variable. The hosts are TEST-NET addresses (192.0.2.0/24) over SSH: nothing answers there,
so an inventory that passed the checks would fail as unreachable instead, as the control case shows."""

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

GOOD_INVENTORY = {
    "all": {
        "vars": {
            "ansible_connection": "ssh",
            "ansible_ssh_common_args": "-o ConnectTimeout=2",
            "lb_kind": "nginx",
            "app_version": "1.0.0",
            "app_key": "0123456789abcdef0123456789abcdef",
            "redis_requirepass": "a-redis-password",
            "postgresql_app_password": "a-database-password",
            "app_admin_password": "an-admin-password",
        },
        "children": {
            "lb": {"hosts": {"lb1": {"ansible_host": "192.0.2.10"}}},
            "app": {"hosts": {"app1": {"ansible_host": "192.0.2.11"}, "app2": {"ansible_host": "192.0.2.12"}}},
            "redis": {"hosts": {"redis1": {"ansible_host": "192.0.2.13"}}},
            "db": {"hosts": {"db1": {"ansible_host": "192.0.2.14"}}},
        },
    }
}


def run(tmp_path: Path, inventory: dict, playbook: str = "site.yml", *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    environment = {**os.environ, "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
                   "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    return subprocess.run(["ansible-playbook", "-i", str(path), playbook, *extra], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=300)


def changed(inventory: dict, path: str, value) -> dict:
    """A copy of inventory with the value at a slash-separated path set (None deletes it)."""
    result = copy.deepcopy(inventory)
    *parents, last = path.split("/")
    node = result
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return result


APP1 = "all/children/app/hosts/app1"

BAD_INPUTS = {
    "unknown balancer": ("all/vars/lb_kind", "varnish", ["lb_kind", "nginx, haproxy, apache"]),
    "app host without ports": (f"{APP1}/app_instance_ports", [], ["app1", "app_instance_ports"]),
    "port out of range": (f"{APP1}/app_instance_ports", [8000, 70000], ["app_instance_ports", "70000"]),
    "port 0": (f"{APP1}/app_instance_ports", [0], ["app_instance_ports"]),
    "duplicate address:port": (f"{APP1}/ansible_host", "192.0.2.12", ["192.0.2.12:8000", "app_address"]),
    "non-numeric capacity": (f"{APP1}/app_capacity", "lots", ["app_capacity"]),
    "missing app key": ("all/vars/app_key", None, ["app_key"]),
    "missing Redis password": ("all/vars/redis_requirepass", None, ["redis_requirepass"]),
    "missing database password": ("all/vars/postgresql_app_password", None, ["postgresql_app_password"]),
    "no app hosts": ("all/children/app/hosts", {}, ["app"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_stops_site_before_any_host_is_contacted(tmp_path, case):
    path, value, words = BAD_INPUTS[case]
    result = run(tmp_path, changed(GOOD_INVENTORY, path, value))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    for word in words:
        assert word in output, (word, output[-3000:])


def test_a_good_inventory_passes_the_checks_and_only_then_meets_the_hosts(tmp_path):
    result = run(tmp_path, GOOD_INVENTORY)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Check each host's variables against its roles' argument specs" in output
    assert "UNREACHABLE" in output, output[-3000:]


@pytest.mark.parametrize(
    ("extra", "words"),
    [(["-e", "rollout_on_failure=pray"], ["rollout_on_failure", "rollback_batch"]),
     (["-e", "rollout_batch_size=0"], ["rollout_batch_size"]),
     (["-e", "app_version=1.0.0", "-e", "lb_kind=squid"], ["lb_kind"])],
)
def test_bad_rollout_settings_stop_the_deploy_before_any_host_is_contacted(tmp_path, extra, words):
    inventory = changed(GOOD_INVENTORY, "all/children/app/hosts/app1/ansible_connection", "local")
    result = run(tmp_path, inventory, "playbooks/rolling_deploy.yml", *extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for word in words:
        assert word in output, (word, output[-3000:])
