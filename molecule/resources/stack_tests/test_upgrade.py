"""Rolling deploys on a whole stack, under traffic through the balancer: a good version reaches every
instance with no failed request; a version whose readiness never passes is rolled back on the first
batch, and the batches after it are not touched. Runs after test_stack.py (file order)."""

import json
import re
import subprocess
import threading
import time

import pytest

from testlib import BackgroundTraffic, container, host_name, run_playbook, stack

KIND = stack().kind
HTTPS_PORT = stack().https_port
APP_HOSTS = [host_name("app1"), host_name("app2")]
PORTS = [8000, 8001]
GOOD_VERSION = "1.1.0"
BROKEN_VERSION = "1.2.0.dev1"

testinfra_hosts = [host_name("lb1")]


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
    assert f"{APP_HOSTS[1]}_8001 not ready now" in output, output[-3000:]
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
    assert f"{APP_HOSTS[0]}_8000" in output
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


# ---------------------------------------------------------------------------------------------------
# Slow start and rollback_all. The stack's app hosts have capacities 1 and 3 (molecule.yml), so app2's
# servers weigh 3 in every balancer and a slow start has steps to show (a weight of 1 has none).

SLOW_START_VERSION = "1.1.1"
ROLLBACK_ALL_VERSION = "1.3.0.dev1"
LB = host_name("lb1")
# (name, weight, drained) of each server, read from the live balancer: HAProxy's runtime state,
# Apache's balancer-manager (which the rolling deploy drains at runtime), the config file nginx was last
# reloaded with.
NGINX_SERVER_LINE = re.compile(
    r"^\s*server\s+\S+\s+weight=(?P<weight>\d+)[^#\n]*?(?P<drained>\bdown\b)?;\s*#\s*(?P<name>\S+)", re.M)
APACHE_MANAGER = ["curl", "-sf", "http://127.0.0.1:8081/balancer-manager?b=rollgate"]
APACHE_MEMBER_ROW = re.compile(
    r"</a></td><td>(?P<name>[^<]+)</td><td>[^<]*</td><td>(?P<factor>[\d.]+)</td><td>[^<]*</td><td>(?P<status>[^<]*)</td>")
HAPROXY_STATE = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
                 "s.sendall(b'show servers state app\\n'); print(s.makefile().read())")
HAPROXY_DRAIN_OR_MAINT = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40


def live_weights() -> dict[str, int]:
    """Server name to the weight it gets traffic at now; 0 when drained."""
    if KIND == "haproxy":
        output = subprocess.run(["podman", "exec", LB, "python3", "-c", HAPROXY_STATE], capture_output=True,
                                text=True, timeout=20, check=True).stdout
        weights = {}
        for line in output.splitlines():
            fields = line.split()
            if len(fields) > 7 and not line.startswith("#"):
                weights[fields[3]] = 0 if int(fields[6]) & HAPROXY_DRAIN_OR_MAINT else int(fields[7])
        return weights
    if KIND == "apache":
        page = subprocess.run(["podman", "exec", LB, *APACHE_MANAGER], capture_output=True, text=True, timeout=20,
                              check=True).stdout
        return {m["name"]: 0 if {"Drn", "Dis"} & set(m["status"].split()) else round(float(m["factor"]))
                for m in APACHE_MEMBER_ROW.finditer(page)}
    config = subprocess.run(["podman", "exec", LB, "cat", "/etc/nginx/nginx.conf"], capture_output=True, text=True,
                            timeout=20, check=True).stdout
    return {m["name"]: 0 if m["drained"] else int(m["weight"]) for m in NGINX_SERVER_LINE.finditer(config)}


class WeightSampler:
    """live_weights() every `interval` seconds in a thread, until stopped: [(monotonic time, weights)]."""

    def __init__(self, interval: float = 0.3) -> None:
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), live_weights()))
            except (subprocess.SubprocessError, ValueError):
                pass  # a reload replacing the file, or the socket between processes: the next sample counts
            self._stop.wait(self.interval)

    def __enter__(self) -> "WeightSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def history(self, server: str) -> list[int]:
        """The server's successive weights, repeats folded."""
        seen: list[int] = []
        for _, weights in self.samples:
            if server in weights and (not seen or seen[-1] != weights[server]):
                seen.append(weights[server])
        return seen


def test_the_balancer_weighs_the_instances_by_capacity(failed_upgrade):
    weights = live_weights()
    assert {name: weights.get(name) for name in (f"{APP_HOSTS[0]}_{PORTS[0]}", f"{APP_HOSTS[1]}_{PORTS[0]}")} == {
        f"{APP_HOSTS[0]}_{PORTS[0]}": 1, f"{APP_HOSTS[1]}_{PORTS[0]}": 3}, weights


@pytest.fixture(scope="module")
def slow_start_upgrade(failed_upgrade):
    """Deploy SLOW_START_VERSION with a slow start of 8 s in 4 steps, sampling the balancer's weights."""
    with BackgroundTraffic(f"https://127.0.0.1:{HTTPS_PORT}/health/liveness") as traffic, WeightSampler() as sampler:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": SLOW_START_VERSION, "rollout_slow_start": 8, "rollout_slow_start_steps": 4})
    return result, traffic, sampler


def test_a_returning_batch_ramps_its_weight_up_step_by_step(slow_start_upgrade):
    result, _, sampler = slow_start_upgrade
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for port in PORTS:
        history = sampler.history(f"{APP_HOSTS[1]}_{port}")
        # At its weight, drained while it moves, back at 25 % (1 of 3), then 50 % (2), then all of it.
        assert history[-1] == 3, history
        assert 0 in history, history
        partial = [weight for weight in history[history.index(0) + 1:] if 0 < weight < 3]
        assert 1 in partial and 2 in partial and partial == sorted(partial), history


def test_the_slow_start_deploy_reaches_every_instance_without_a_failed_request(slow_start_upgrade):
    _, traffic, _ = slow_start_upgrade
    for app_host in APP_HOSTS:
        for port in PORTS:
            assert readiness(app_host, port)["version"] == SLOW_START_VERSION, (app_host, port)
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]


@pytest.fixture(scope="module")
def rollback_all_upgrade(slow_start_upgrade, tmp_path_factory):
    """Deploy ROLLBACK_ALL_VERSION with rollout_on_failure rollback_all, where only app2's readiness fails
    (a host variable in an extra inventory): batch 1 passes, batch 2 fails, and both go back."""
    extra_inventory = tmp_path_factory.mktemp("inventory") / "fail_app2.yml"
    extra_inventory.write_text(json.dumps({"app": {"hosts": {APP_HOSTS[1]: {"app_fail_readiness": True}}}}))
    with BackgroundTraffic(f"https://127.0.0.1:{HTTPS_PORT}/health/liveness") as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": ROLLBACK_ALL_VERSION, "rollout_on_failure": "rollback_all", "rollout_gate_timeout": 15},
            extra_inventory=str(extra_inventory))
    return result, traffic


def test_rollback_all_stops_at_the_failing_batch_and_says_the_others_went_back(rollback_all_upgrade):
    result, _ = rollback_all_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 2 of 2" in output, output[-4000:]
    assert "Batches 1 went back too (rollout_on_failure: rollback_all)" in output, output[-4000:]


def test_rollback_all_leaves_the_whole_fleet_on_the_previous_version(rollback_all_upgrade):
    for app_host in APP_HOSTS:
        for port in PORTS:
            body = readiness(app_host, port)
            assert (body["status"], body["version"]) == ("ready", SLOW_START_VERSION), (app_host, port, body)
    weights = live_weights()
    assert all(weights[f"{app}_{port}"] > 0 for app in APP_HOSTS for port in PORTS), weights


def test_no_request_failed_during_the_rollback_all(rollback_all_upgrade):
    _, traffic = rollback_all_upgrade
    assert traffic.requests > 50, traffic.statuses
    assert traffic.failures == [], traffic.failures[:20]
