"""Bad input on a running stack stops site.yml and the rolling deploy before any host changes: an app
host that does not answer, and a version that does not exist. The service keeps running as it was: the
same instance processes, the same balancer config, the same version, and every recap says changed=0.

Why once: these runs stop before any balancer step, on the controller or at the first connection, so
the balancer makes no difference; they run once, on the last balancer, and leave the stack as it was."""

import os

import pytest

from testlib import BALANCER_CONFIGS, changed_counts, container, host_name, instances, run_playbook

LB_HOST = host_name("lb1")
APP_HOSTS = [host_name("app1"), host_name("app2")]
# Every balancer's config that is on the lb host (a switch leaves the others' files in place).
CONFIG_FILES = list(BALANCER_CONFIGS.values())
# An app host on a TEST-NET address (RFC 5737): nothing answers there.
SILENT_HOST = host_name("app9")
MISSING_VERSION = "999.0.0"

testinfra_hosts = [LB_HOST]


def service_state() -> dict:
    """What a run that changed nothing leaves as it was: each instance's main PID and version (one exec
    per app host), and the balancers' configs."""
    state = {}
    for app_host in APP_HOSTS:
        for port, (pid, readiness) in instances(app_host).items():
            state[f"{app_host}:{port}"] = (pid, readiness.get("version"))
    # Only the active balancer's configs exist (sha256sum exits 1 on the others): at least one must be read.
    state["balancer configs"] = container(LB_HOST).check_output(
        f"sha256sum {' '.join(CONFIG_FILES)} 2>/dev/null || true")
    assert state["balancer configs"].strip(), f"none of {CONFIG_FILES} exists on {LB_HOST}"
    return state


@pytest.fixture
def silent_app_host(tmp_path):
    """A second inventory file that adds an app host which never answers."""
    path = tmp_path / "silent_host.yml"
    path.write_text(
        "app:\n  hosts:\n"
        f"    {SILENT_HOST}:\n"
        "      ansible_connection: ssh\n"
        "      ansible_host: 192.0.2.21\n"
        "      ansible_ssh_common_args: -o ConnectTimeout=3\n"
    )
    return str(path)


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/rolling_deploy.yml"])
def test_an_unreachable_host_stops_the_run_before_any_host_changes(silent_app_host, playbook):
    before = service_state()
    result = run_playbook(playbook, {}, timeout=600, extra_inventory=silent_app_host)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"did not answer, so no host was changed: {SILENT_HOST} (192.0.2.21" in output, output[-4000:]
    assert "Fix the connection to each" in output
    counts = changed_counts(result.stdout)
    assert set(APP_HOSTS + [LB_HOST]) <= set(counts), result.stdout[-3000:]
    assert set(counts.values()) == {0}, counts
    assert service_state() == before


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/rolling_deploy.yml"])
def test_a_version_that_does_not_exist_stops_the_run_before_any_host_changes(playbook):
    wheelhouse = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))), "build", "wheels", MISSING_VERSION)
    assert not os.path.exists(wheelhouse), f"{wheelhouse} exists: pick another MISSING_VERSION"
    before = service_state()
    result = run_playbook(playbook, {"app_version": MISSING_VERSION, "app_build_from_source": False}, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"app_version {MISSING_VERSION} does not exist on the controller" in output, output[-4000:]
    assert f"playbooks/build_release.yml -e app_version={MISSING_VERSION}" in output
    assert set(changed_counts(result.stdout).values()) == {0}
    assert service_state() == before
    for app_host in APP_HOSTS:
        assert not container(app_host).file(f"/opt/inventory/releases/{MISSING_VERSION}").exists


def test_a_controller_without_the_balancers_checker_has_the_lb_host_check_the_config():
    """The balancer's checker refuses a value the specs let through: with the checker on the controller's
    PATH hidden (the balancers live in sbin), the lb host's own balancer checks the candidate, activating
    nothing, and the run stops before any host changes, naming the variable. Negative control: the same
    run with check_on_host's play left out would go on to converge (see the catalogue's no-checker case)."""
    path = os.pathsep.join(entry for entry in os.environ["PATH"].split(os.pathsep) if not entry.endswith("sbin"))
    before = service_state()
    result = run_playbook("site.yml", {"lb_metrics_allowed_networks": ["10.0.0.0/33"]}, timeout=600,
                          env={"PATH": path})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "is not installed on the controller, so it was not checked there" in output, output[-4000:]
    assert f"on {LB_HOST} refuses the" in output, output[-4000:]
    assert "10.0.0.0/33" in output and "which holds lb_metrics_allowed_networks" in output
    assert "Prepare every host" not in output
    assert set(changed_counts(result.stdout).values()) == {0}
    assert service_state() == before
    assert container(LB_HOST).check_output("ls -d /tmp/rollgate-lb-check-* 2>/dev/null | wc -l").strip() == "0"
