"""playbooks/generate_lb_config.yml, run as a user runs it: render each balancer's config for the lab
inventory without contacting any host, and check it with the balancer's own checker.

`make unit` runs scripts/install-checkers.sh first, which installs nginx, HAProxy and Apache on this
machine (without starting them), so every checker must really run here: a generator that says a
checker is not installed fails the test instead of passing unchecked.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import balancers  # noqa: E402  (scripts/balancers.py: every balancer kind, each one's checker and file)

KINDS = balancers.kinds()
CHECKERS = {kind: balancers.facts(kind)["checker"] for kind in KINDS}
FILES = {kind: balancers.facts(kind)["config_file"] for kind in KINDS}


def isolated_env(tmp_path: Path) -> dict:
    """An empty fact cache: addresses then come from the inventory, as on a fresh controller. The lab reached
    through podman, whatever `make up LAB_CONNECTION=...` last kept: over SSH its hosts are named by address."""
    return {**os.environ, "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"), "ROLLGATE_LAB_CONNECTION": "podman"}


def generate(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible-playbook", "-i", "inventories/lab", "playbooks/generate_lb_config.yml",
         "-e", f"lb_output_dir={tmp_path}", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=isolated_env(tmp_path),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_each_balancer_config_is_rendered_and_passes_its_checker(tmp_path, kind):
    result = generate(tmp_path, "-e", f"lb_kind={kind}")
    assert result.returncode == 0, result.stdout[-3000:]
    config = (tmp_path / kind / FILES[kind]).read_text()
    for instance in ("app1:8000", "app1:8001", "app2:8000", "app2:8001"):
        assert instance in config, f"{instance} missing from the {kind} config"
    assert "is not installed on" not in result.stdout, (
        f"{CHECKERS[kind]} is not installed, so its checker did not run: run scripts/install-checkers.sh as root")
    assert re.search(r"TASK \[lb : Run the checker\] \**\nok: \[localhost\]", result.stdout), result.stdout[-3000:]
    assert f"checked with {CHECKERS[kind]}: OK" in result.stdout


def test_an_unknown_balancer_fails_naming_the_three_choices(tmp_path):
    result = generate(tmp_path, "-e", "lb_kind=traefik")
    assert result.returncode != 0
    assert "lb_kind must be one of: nginx, haproxy, apache, got: traefik" in result.stdout
    assert not (tmp_path / "traefik").exists()


def write_inventory(tmp_path: Path, app_hosts: str) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    lb:\n      hosts:\n        lb1:\n"
        "    app:\n      hosts:\n" + app_hosts
    )
    return inventory


def generate_for(tmp_path: Path, inventory: Path, kind: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/generate_lb_config.yml",
         "-e", f"lb_output_dir={tmp_path}/out", "-e", f"lb_kind={kind}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=isolated_env(tmp_path),
    )


def test_weights_follow_app_capacity(tmp_path):
    """A host with twice the capacity gets twice the weight, in HAProxy's own server lines."""
    inventory = write_inventory(
        tmp_path,
        "        big:\n          app_address: 10.0.0.1\n          app_capacity: 4\n"
        "        small:\n          app_address: 10.0.0.2\n          app_capacity: 2\n",
    )
    result = generate_for(tmp_path, inventory, "haproxy")
    assert result.returncode == 0, result.stdout[-3000:]
    config = (tmp_path / "out" / "haproxy" / "haproxy.cfg").read_text()
    weights = dict(re.findall(r"server (\w+?)_\d+ \S+ .*?weight (\d+)", config))
    assert int(weights["big"]) == 2 * int(weights["small"])


def test_a_duplicate_address_and_port_fails_naming_both_hosts(tmp_path):
    inventory = write_inventory(
        tmp_path,
        "        one:\n          app_address: 10.0.0.1\n"
        "        two:\n          app_address: 10.0.0.1\n",
    )
    result = generate_for(tmp_path, inventory, "nginx")
    assert result.returncode != 0
    assert "'one' and 'two'" in result.stdout and "app_instance_ports" in result.stdout
