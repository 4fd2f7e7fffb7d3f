"""Every host of the stack as the common role and the connection leave it (the checks of the former smoke
scenario, on the stack's own hosts): systemd and a persistent journal, the base packages, the hosts
resolving each other by name, and the project's connection running a module in one `podman exec`.

Why once: none of it depends on the balancer. One exec per host for the state checks.
"""

import subprocess

import pytest

from testlib import ansible_env, container, host_name, inventory

HOSTS = ["lb1", "app1", "app2", "redis1", "db1"]

# The checks below name their hosts themselves.
testinfra_hosts = [host_name("lb1")]

STATE = ("systemctl is-system-running; systemctl is-active systemd-journald; "
         "test -d /var/log/journal && echo journal-dir; "
         "grep -qx Storage=persistent /etc/systemd/journald.conf.d/50-rollgate.conf && echo persistent; "
         "dpkg-query -W -f='${Status}\\n' curl; "
         "for other in %s; do getent hosts \"$other\" > /dev/null && echo \"resolves $other\"; done; true")


@pytest.mark.parametrize("name", HOSTS)
def test_systemd_runs_with_a_persistent_journal_curl_and_every_host_by_name(name):
    others = [host_name(other) for other in HOSTS if other != name]
    lines = container(host_name(name)).check_output(STATE % " ".join(others)).splitlines()
    assert lines[:5] == ["running", "active", "journal-dir", "persistent", "install ok installed"], lines
    assert lines[5:] == [f"resolves {other}" for other in others], lines


def test_the_connection_runs_a_module_in_one_podman_exec():
    """connection_plugins/podman_pipelined.py sends the module on stdin: one `podman exec --interactive`
    per module, no temporary directory made and removed in the container. The podman lab reaches its
    hosts with it, and the SSH lab and stack open SSH with it (playbooks/lab_ssh.yml): named here, since
    the stack's own hosts may be reached over SSH."""
    name = host_name("redis1")
    podman = ["-e", "ansible_connection=podman_pipelined", "-e", f"ansible_host={name}", "-e", "ansible_user=root",
              "-e", "ansible_remote_tmp=/root/.ansible/tmp"]
    result = subprocess.run(["ansible", "-i", inventory(), name, "-m", "ansible.builtin.ping", "-vvv", *podman],
                            env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Ansible's verbose lines (each podman command it runs) go to stderr.
    output = result.stdout + result.stderr
    execs = [line for line in output.splitlines() if "RUN [" in line and "b'exec'" in line]
    # The module: one exec with it on stdin; no temporary directory made or removed (the inventory names
    # the interpreter, so there is no discovery exec before it).
    assert len([line for line in execs if "b'--interactive'" in line]) == 1, execs
    assert not [line for line in execs if "ansible-tmp" in line], execs
    assert '"ping": "pong"' in output, output[-2000:]
