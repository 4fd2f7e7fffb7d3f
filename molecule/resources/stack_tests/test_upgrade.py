"""Rolling deploys on the stack, under traffic through the balancer.

Why per kind and why once: each balancer drains, weighs and returns instances its own way, so per
balancer run the weights by capacity, one good deploy with a slow start (the new version everywhere, the
weights ramped up step by step, no failed request) and a failing deploy (rolled back at the first batch,
the later batches untouched, no failed request). The refusal of a degraded fleet and `rollback_all` are
decisions of the rollout before or after any balancer step: they run once, on the last balancer.

The good deploy goes to whichever of GOOD_VERSION and NEXT_GOOD_VERSION the fleet does not run, so a
later balancer's deploys reuse the releases an earlier one installed (the stack keeps 5 releases).
"""

import json

import pytest

from testlib import (BackgroundTraffic, WeightSampler, active_kind, container, fleet_version, host_name, instances,
                     live_weights, run_playbook, stack)

HTTPS_PORT = stack().https_port
APP_HOSTS = [host_name("app1"), host_name("app2")]
PORTS = [8000, 8001]
GOOD_VERSION = "1.1.0"
NEXT_GOOD_VERSION = "1.1.1"
BROKEN_VERSION = "1.2.0.dev1"
ROLLBACK_ALL_VERSION = "1.3.0.dev1"
TRAFFIC = f"https://127.0.0.1:{HTTPS_PORT}/health/liveness"

testinfra_hosts = [host_name("lb1")]


def another_good_version(running: str) -> str:
    return NEXT_GOOD_VERSION if running == GOOD_VERSION else GOOD_VERSION


def versions() -> dict[str, tuple[str, str]]:
    """Each instance's readiness status and version, one exec per app host."""
    return {f"{app_host}:{port}": (readiness.get("status"), readiness.get("version"))
            for app_host in APP_HOSTS for port, (_, readiness) in instances(app_host).items()}


def wait_until_ready(app_host: str) -> None:
    """Up to 60 s per instance for its readiness to pass (an instance restarted by the test before)."""
    container(app_host).run("for p in 8000 8001; do timeout 60 sh -c "
                            "\"until curl -sf http://127.0.0.1:$p/health/readiness; do sleep 1; done\"; done")


def main_pids(app_host: str) -> dict[int, str]:
    return {port: pid for port, (pid, _) in instances(app_host).items()}


@pytest.fixture(scope="module")
def upgrade(balancer):
    """One good deploy under traffic, with a slow start of 8 s in 4 steps, the balancer's weights sampled
    all along; the tests read the result."""
    version = another_good_version(fleet_version())
    with BackgroundTraffic(TRAFFIC) as traffic, WeightSampler(balancer.kind) as sampler:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": version, "rollout_slow_start": 8, "rollout_slow_start_steps": 4})
    return result, traffic, sampler, version


def test_rolling_deploy_succeeds(upgrade):
    result, _, _, _ = upgrade
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "batch 1" in result.stdout and "batch 2" in result.stdout


def test_every_instance_runs_the_new_version(upgrade):
    _, _, _, version = upgrade
    found = versions()
    assert set(found.values()) == {("ready", version)}, found


def test_no_request_failed_during_the_deploy(upgrade):
    _, traffic, _, _ = upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]
    assert set(traffic.statuses) == {200}, traffic.statuses


def test_a_returning_batch_ramps_its_weight_up_step_by_step(upgrade):
    """app2 has capacity 3 (the stack's host_vars): drained while it moves, back at 25 % (1 of 3), then 50 %
    (2), then all of it."""
    _, _, sampler, _ = upgrade
    for port in PORTS:
        history = sampler.history(f"{APP_HOSTS[1]}_{port}")
        assert history[-1] == 3, history
        assert 0 in history, history
        partial = [weight for weight in history[history.index(0) + 1:] if 0 < weight < 3]
        assert 1 in partial and 2 in partial and partial == sorted(partial), history


def test_the_balancer_weighs_the_instances_by_capacity(upgrade, balancer):
    weights = live_weights(balancer.kind)
    assert {name: weights.get(name) for name in (f"{APP_HOSTS[0]}_{PORTS[0]}", f"{APP_HOSTS[1]}_{PORTS[0]}")} == {
        f"{APP_HOSTS[0]}_{PORTS[0]}": 1, f"{APP_HOSTS[1]}_{PORTS[0]}": 3}, weights


@pytest.fixture(scope="module")
def failed_upgrade(upgrade):
    """Deploy BROKEN_VERSION (readiness always 503) under traffic, after the good one."""
    wait_until_ready(APP_HOSTS[1])
    untouched_before = main_pids(APP_HOSTS[1])
    with BackgroundTraffic(TRAFFIC) as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": BROKEN_VERSION, "app_fail_readiness": True, "rollout_gate_timeout": 15})
    return result, traffic, untouched_before, upgrade[3]


def test_a_failing_version_stops_the_rollout_naming_the_instance(failed_upgrade):
    result, _, _, _ = failed_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 1 of 2" in output, output[-4000:]
    assert f"{APP_HOSTS[0]}_8000" in output
    assert "forced by APP_FAIL_READINESS" in output


def test_the_failed_batch_is_back_on_the_previous_version(failed_upgrade):
    _, _, _, previous = failed_upgrade
    for port, (_, body) in instances(APP_HOSTS[0]).items():
        assert (body.get("status"), body.get("version")) == ("ready", previous), (port, body)


def test_the_batches_not_reached_were_not_touched(failed_upgrade):
    _, _, untouched_before, previous = failed_upgrade
    now = instances(APP_HOSTS[1])
    assert {port: pid for port, (pid, _) in now.items()} == untouched_before
    assert {port: body.get("version") for port, (_, body) in now.items()} == {port: previous for port in PORTS}


def test_no_request_failed_during_the_failed_deploy(failed_upgrade):
    _, traffic, _, _ = failed_upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]


def test_the_balancer_serves_every_instance_afterwards(failed_upgrade, host):
    """40 requests from the balancer's host, in one exec."""
    headers = host.check_output(
        "for i in $(seq 40); do curl -sk -o /dev/null -D - https://127.0.0.1:443/health/liveness; done"
        " | grep -i '^x-instance:' || true")
    seen = {line.split(":", 1)[-1].strip() for line in headers.splitlines()}
    assert {f"{app}:{port}" for app in APP_HOSTS for port in PORTS} <= seen


# --- Once: decisions of the rollout itself ----------------------------------------------------------

def test_a_degraded_fleet_stops_the_deploy_before_anything_changes():
    app2 = container(APP_HOSTS[1])
    before = main_pids(APP_HOSTS[0])
    app2.check_output("systemctl stop inventory@8001.service")
    try:
        result = run_playbook("playbooks/rolling_deploy.yml", {"app_version": another_good_version(fleet_version())})
    finally:
        app2.check_output("systemctl start inventory@8001.service")
    output = result.stdout + result.stderr  # ansible-core prints errors on stderr
    assert result.returncode != 0
    assert f"{APP_HOSTS[1]}_8001 not ready now" in output, output[-3000:]
    assert "rollout_max_unavailable" in output
    assert main_pids(APP_HOSTS[0]) == before


@pytest.fixture(scope="module")
def rollback_all_upgrade(tmp_path_factory):
    """Deploy ROLLBACK_ALL_VERSION with rollout_on_failure rollback_all, where only app2's readiness fails
    (a host variable in an extra inventory): batch 1 passes, batch 2 fails, and both go back."""
    wait_until_ready(APP_HOSTS[1])
    previous = fleet_version()
    extra_inventory = tmp_path_factory.mktemp("inventory") / "fail_app2.yml"
    extra_inventory.write_text(json.dumps({"app": {"hosts": {APP_HOSTS[1]: {"app_fail_readiness": True}}}}))
    with BackgroundTraffic(TRAFFIC) as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": ROLLBACK_ALL_VERSION, "rollout_on_failure": "rollback_all", "rollout_gate_timeout": 15},
            extra_inventory=str(extra_inventory))
    return result, traffic, previous


def test_rollback_all_stops_at_the_failing_batch_and_says_the_others_went_back(rollback_all_upgrade):
    result, _, _ = rollback_all_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 2 of 2" in output, output[-4000:]
    assert "Batches 1 went back too (rollout_on_failure: rollback_all)" in output, output[-4000:]


def test_rollback_all_leaves_the_whole_fleet_on_the_previous_version(rollback_all_upgrade):
    _, _, previous = rollback_all_upgrade
    found = versions()
    assert set(found.values()) == {("ready", previous)}, found
    weights = live_weights(active_kind())
    assert all(weights[f"{app}_{port}"] > 0 for app in APP_HOSTS for port in PORTS), weights


def test_no_request_failed_during_the_rollback_all(rollback_all_upgrade):
    _, traffic, _ = rollback_all_upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]
