"""Rolling deploys on a whole stack, under traffic through the balancer: a good version reaches every
instance with no failed request; a version whose readiness never passes is rolled back on the first
batch, and the batches after it are not touched. Runs after test_stack.py (file order)."""

import json
import os

import pytest

from testlib import BackgroundTraffic, container, run_playbook

KIND = os.environ["STACK_LB_KIND"]
HTTPS_PORT = int(os.environ["STACK_HTTPS_PORT"])
PREFIX = f"s{KIND[0]}"
APP_HOSTS = [f"{PREFIX}-app1", f"{PREFIX}-app2"]
PORTS = [8000, 8001]
GOOD_VERSION = "1.1.0"
BROKEN_VERSION = "1.2.0.dev1"

testinfra_hosts = [f"{PREFIX}-lb1"]


def readiness(app_host: str, port: int) -> dict:
    output = container(app_host).check_output(f"curl -s -m 5 http://127.0.0.1:{port}/health/readiness")
    return json.loads(output)


def main_pids(app_host: str) -> dict[int, str]:
    host = container(app_host)
    return {port: host.check_output(f"systemctl show --property=MainPID --value inventory@{port}.service")
            for port in PORTS}


@pytest.fixture(scope="module")
def upgrade():
    """Deploy GOOD_VERSION once under traffic; the tests read the result."""
    with BackgroundTraffic(f"https://127.0.0.1:{HTTPS_PORT}/health/liveness") as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {"app_version": GOOD_VERSION})
    return result, traffic


def test_rolling_deploy_succeeds(upgrade):
    result, _ = upgrade
    assert result.returncode == 0, result.stdout[-4000:]
    assert "batch 1" in result.stdout and "batch 2" in result.stdout


def test_every_instance_runs_the_new_version(upgrade):
    for app_host in APP_HOSTS:
        for port in PORTS:
            body = readiness(app_host, port)
            assert (body["status"], body["version"]) == ("ready", GOOD_VERSION), (app_host, port, body)


def test_no_request_failed_during_the_deploy(upgrade):
    _, traffic = upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]
    assert set(traffic.statuses) == {200}, traffic.statuses


def test_a_degraded_fleet_stops_the_deploy_before_anything_changes(upgrade):
    app2 = container(APP_HOSTS[1])
    before = main_pids(APP_HOSTS[0])
    app2.check_output("systemctl stop inventory@8001.service")
    try:
        result = run_playbook("playbooks/rolling_deploy.yml", {"app_version": GOOD_VERSION})
    finally:
        app2.check_output("systemctl start inventory@8001.service")
    output = result.stdout + result.stderr  # ansible-core prints errors on stderr
    assert result.returncode != 0
    assert f"{PREFIX}-app2_8001 not ready now" in output, output[-3000:]
    assert "rollout_max_unavailable" in output
    assert main_pids(APP_HOSTS[0]) == before


@pytest.fixture(scope="module")
def failed_upgrade(upgrade):
    """Deploy BROKEN_VERSION (readiness always 503) under traffic, after the good one."""
    container(APP_HOSTS[1]).run("for p in 8000 8001; do timeout 60 sh -c "
                                "\"until curl -sf http://127.0.0.1:$p/health/readiness; do sleep 1; done\"; done")
    untouched_before = main_pids(APP_HOSTS[1])
    with BackgroundTraffic(f"https://127.0.0.1:{HTTPS_PORT}/health/liveness") as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": BROKEN_VERSION, "app_fail_readiness": True, "rollout_gate_timeout": 15})
    return result, traffic, untouched_before


def test_a_failing_version_stops_the_rollout_naming_the_instance(failed_upgrade):
    result, _, _ = failed_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 1 of 2" in output, output[-4000:]
    assert f"{PREFIX}-app1_8000" in output
    assert "forced by APP_FAIL_READINESS" in output


def test_the_failed_batch_is_back_on_the_previous_version(failed_upgrade):
    for port in PORTS:
        body = readiness(APP_HOSTS[0], port)
        assert (body["status"], body["version"]) == ("ready", GOOD_VERSION), (port, body)


def test_the_batches_not_reached_were_not_touched(failed_upgrade):
    _, _, untouched_before = failed_upgrade
    assert main_pids(APP_HOSTS[1]) == untouched_before
    for port in PORTS:
        assert readiness(APP_HOSTS[1], port)["version"] == GOOD_VERSION


def test_no_request_failed_during_the_failed_deploy(failed_upgrade):
    _, traffic, _ = failed_upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]


def test_the_balancer_serves_every_instance_afterwards(failed_upgrade, host):
    seen = set()
    for _ in range(40):
        headers = host.check_output(
            "curl -sk -o /dev/null -D - https://127.0.0.1:443/health/liveness | grep -i '^x-instance:' || true")
        seen.add(headers.split(":", 1)[-1].strip())
    assert {f"{app}:{port}" for app in APP_HOSTS for port in PORTS} <= seen
