"""The smoke scenario: real systemd hosts, converged by the common role."""


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
