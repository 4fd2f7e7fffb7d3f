"""The smoke scenario: real systemd hosts, converged by the common role, through the lab's connection."""

import subprocess

from testlib import ansible_env, inventory


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running"


def test_journald_is_running_and_persistent(host):
    assert host.service("systemd-journald").is_running
    assert host.file("/var/log/journal").is_directory
    conf = host.file("/etc/systemd/journald.conf.d/50-rollgate.conf")
    assert conf.contains("^Storage=persistent$")


def test_curl_is_installed(host):
    assert host.package("curl").is_installed


def test_hosts_resolve_each_other(host):
    """The scenario network gives name resolution between hosts, as the lab relies on."""
    other = "smoke2" if host.backend.get_hostname() == "smoke1" else "smoke1"
    assert host.run(f"getent hosts {other}").rc == 0


def test_the_lab_connection_runs_a_module_in_one_podman_exec(host):
    """connection_plugins/podman_pipelined.py sends the module on stdin: one `podman exec --interactive`
    per module, no temporary directory made and removed in the container."""
    name = host.backend.get_hostname()
    result = subprocess.run(["ansible", "-i", inventory(), name, "-m", "ansible.builtin.ping", "-vvv"],
                            env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Ansible's verbose lines (each podman command it runs) go to stderr.
    output = result.stdout + result.stderr
    execs = [line for line in output.splitlines() if "RUN [" in line and "b'exec'" in line]
    # The module: one exec with it on stdin; no temporary directory made or removed (interpreter
    # discovery, when the inventory does not name the interpreter, is one more exec before it).
    assert len([line for line in execs if "b'--interactive'" in line]) == 1, execs
    assert not [line for line in execs if "ansible-tmp" in line], execs
    assert '"ping": "pong"' in output, output[-2000:]
