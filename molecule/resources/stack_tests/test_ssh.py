"""The production path: hosts reached over SSH as the unprivileged user deploy, with sudo, host keys
checked. sshd takes keys only and refuses root; a host that refuses the key, or a deploy user without
sudo, stops site.yml before any host changes, naming the host and what failed.

Runs where the stack's hosts are reached over SSH (make up LAB_CONNECTION=ssh); on a stack reached
through podman there is no SSH to test, and the module says so."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testlib import changed_counts, container, host_name, instances, run_playbook

LB_HOST = host_name("lb1")
APP_HOST = host_name("app2")


CONNECTION_PLAYBOOK = """
- name: Write how each host is reached
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write each host's connection settings, templated
      ansible.builtin.copy:
        content: >-
          {{ {'connection': hostvars[item].ansible_connection | default('ssh'),
              'address': hostvars[item].ansible_host | default(item),
              'user': hostvars[item].ansible_user | default(''),
              'key': hostvars[item].ansible_ssh_private_key_file | default(''),
              'args': hostvars[item].ansible_ssh_common_args | default('')} | to_json }}
        dest: "{{ facts_dir }}/{{ item }}.json"
        mode: "0600"
      loop: "{{ groups['all'] }}"
"""


def connection_facts(work_dir: Path) -> dict[str, dict]:
    """Per host, how Ansible reaches it: connection, address, user, key and SSH arguments (templated), as
    files a playbook writes on the controller (no parsing of Ansible's output, which callbacks add to)."""
    playbook = work_dir / "connection.yml"
    playbook.write_text(CONNECTION_PLAYBOOK)
    result = run_playbook(str(playbook), {"facts_dir": str(work_dir)}, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {path.stem: json.loads(path.read_text()) for path in work_dir.glob("*.json")}


FACTS: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def over_ssh(tmp_path_factory) -> None:
    """Read how the hosts are reached once; skip the module where it is not SSH."""
    FACTS.update(connection_facts(tmp_path_factory.mktemp("connection")))
    if not all(facts["connection"] == "ssh" for facts in FACTS.values()):
        pytest.skip("the stack's hosts are reached through podman, not SSH (make up LAB_CONNECTION=ssh)")


def ssh(host: str, *options: str, user: str = "deploy", command: str = "true") -> subprocess.CompletedProcess:
    """ssh to a stack host as Ansible reaches it (its key, its known hosts), with more options."""
    facts = FACTS[host]
    # ssh takes the first value it is given for an option: the test's options come first.
    return subprocess.run(["ssh", *options, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i", facts["key"],
                           *facts["args"].split(), f"{user}@{facts['address']}", command],
                          capture_output=True, text=True, timeout=60, check=False)


def test_deploy_logs_in_with_the_key_and_becomes_root_with_sudo():
    result = ssh(APP_HOST, command="id -un; sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["deploy", "0"]


@pytest.fixture
def root_key(request) -> Iterator[None]:
    """The deploy key in root's authorized_keys too: only sshd's PermitRootLogin is left to refuse it."""
    host = container(APP_HOST)
    host.check_output("install -d -m 0700 /root/.ssh && cp /home/deploy/.ssh/authorized_keys /root/.ssh/authorized_keys")
    yield
    host.check_output("rm -f /root/.ssh/authorized_keys")


def test_root_cannot_log_in_even_with_an_authorised_key(root_key):
    result = ssh(APP_HOST, user="root")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_sshd_offers_keys_only():
    result = ssh(APP_HOST, "-o", "PreferredAuthentications=none")
    assert "Permission denied (publickey)." in result.stderr, result.stderr


def test_a_changed_host_key_is_refused(tmp_path):
    """Host key checking is on: a known_hosts line with another key for the host stops the connection."""
    facts = FACTS[APP_HOST]
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{facts['address']} {other_key.with_suffix('.pub').read_text().split(' ', 2)[0]} "
                           f"{other_key.with_suffix('.pub').read_text().split(' ', 2)[1]}\n")
    result = ssh(APP_HOST, "-o", f"UserKnownHostsFile={known_hosts}")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr or "Host key verification failed" in result.stderr


def service_state() -> dict:
    return {port: pid for port, (pid, _) in instances(APP_HOST).items()}


@pytest.fixture
def app_host_broken(request) -> Iterator[str]:
    """app2 with one thing of its SSH path taken away: the key (authorized_keys) or sudo (sudoers.d)."""
    paths = {"key": "/home/deploy/.ssh/authorized_keys", "sudo": "/etc/sudoers.d/deploy"}
    path = paths[request.param]
    host = container(APP_HOST)
    host.check_output(f"mv {path} {path}.away")
    yield request.param
    host.check_output(f"mv {path}.away {path}")


@pytest.mark.parametrize("app_host_broken, said", [("key", "Permission denied (publickey)"),
                                                    ("sudo", "Missing sudo password")],
                         indirect=["app_host_broken"])
def test_a_host_refusing_the_key_or_sudo_stops_site_before_any_host_changes(app_host_broken, said, tmp_path):
    before = service_state()
    # New SSH connections: a master connection an earlier run left open (ControlPersist) was made with the key.
    result = run_playbook("site.yml", {}, timeout=600, env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"1 host(s) of the inventory did not answer, so no host was changed: {APP_HOST} (" in output, output[-3000:]
    assert said in output, output[-3000:]
    assert set(changed_counts(result.stdout).values()) == {0}
    assert service_state() == before
