"""Rolling deploys on the stack, under traffic through the balancer.

Why per kind and why once: each balancer drains, weighs and returns instances its own way, so per
balancer run the weights by capacity and one good deploy with a slow start (the new version everywhere, the
weights ramped up step by step, no failed request, the balancer serving every instance afterwards). A
rollback moves a batch through the same drain, gate and return (roles/rollout/tasks/move.yml) as a good
batch: the three failure paths run once each, spread so that each balancer takes one under traffic - the
failing deploy (rolled back at the first batch, the later batches untouched) with the first balancer,
`rollback_all` with the second, the config that fails readiness with the last. The refusals of a degraded
fleet are decisions of the rollout before any balancer step: they run once, on the last balancer.

The good deploy goes to whichever of GOOD_VERSION and NEXT_GOOD_VERSION the fleet does not run, so a
later balancer's deploys reuse the releases an earlier one installed (the stack keeps 5 releases).

The traffic is what users send (testlib.UserTraffic: writes, database reads and /health from concurrent
keep-alive clients, each class counted apart), and test_zero_failed.py shows, per balancer, that it
fails against the restarts a rolling deploy avoids. The good deploy also carries a write held in flight
on one instance past the app's DRAIN_TIMEOUT: it succeeds only if the deploy waited for it.
"""

import base64
import contextlib
import json
import threading
import time
from pathlib import Path

import pytest

from testlib import (APP_ENV_LINK, BALANCER_CONFIGS, HeldWrite, UserTraffic, WeightSampler, active_kind,
                     app_drain_timeout, balancer_reloads, changed_counts, container, drain_watcher, fleet_version,
                     floating_url, group_vars, host_address, host_name, instances, lb_hosts, live_weights,
                     record_traffic, run_playbook, served_instances, stack, vip_client)

APP_HOSTS = [host_name("app1"), host_name("app2")]
DB_HOST = host_name("db1")
PORTS = [8000, 8001]
GOOD_VERSION = "1.1.0"
NEXT_GOOD_VERSION = "1.1.1"
BROKEN_VERSION = "1.2.0.dev1"
ROLLBACK_ALL_VERSION = "1.3.0.dev1"
INVENTORY_VERSION = group_vars()["app_version"]
# A rollout hook that records what it saw (rollout_*_tasks_file), given by its absolute path.
HOOK_TASKS = str(Path(__file__).resolve().parents[1] / "tasks" / "record_rollout_hook.yml")
DRAIN_TIMEOUT = app_drain_timeout()
# The good deploy's slow start: 8 s over 4 steps, 2 s of pause each. nginx's weights are counted from its
# answers in windows of 1.5 s (testlib.served_weights), and a window across a reload is left out: a step
# must hold for more than two windows for one to fall wholly inside it. HAProxy's and Apache's are read
# every 0.3 s, and 2 s a step leaves room for a probe slowed by a loaded machine (make test runs the
# stack beside the other scenarios on 2 cores).
SLOW_START = 8

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


def release_after_the_drain(held: HeldWrite, sampler: WeightSampler, seen: dict, timeout: float = 300) -> None:
    """Once the held write's instance is drained (weight 0 in the balancer), keep the write held
    DRAIN_TIMEOUT + 3 s more, then let it go: had the deploy stopped the instance without waiting (about a
    second after the drain), the app would have ended the write by then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and 0 not in sampler.history(held.instance):
        time.sleep(0.3)
    seen["drained"] = 0 in sampler.history(held.instance)
    time.sleep(DRAIN_TIMEOUT + 3)
    held.release()


@pytest.fixture(scope="module")
def upgrade(balancer):
    """One good deploy under traffic, with a slow start of SLOW_START seconds in 4 steps, the balancer's
    weights sampled all along, and a write held in flight on app1:8000 (batch 1), sent to it straight: held from before
    the deploy until DRAIN_TIMEOUT + 3 s after that instance's drain, longer than the balancer's read
    timeout would allow; the tests read the result. With a balancer pair, the traffic goes to the floating address,
    as users' does, and the other balancers' drains are watched too (seen["other_balancers"])."""
    version = another_good_version(fleet_version())
    seen: dict = {}
    reloads = [balancer_reloads(host_name("lb1"), balancer.kind)]
    marks = [time.monotonic()]
    others = {lb: drain_watcher(balancer.kind, lb) for lb in lb_hosts() if lb != host_name("lb1")}
    with HeldWrite(APP_HOSTS, DB_HOST, instance=f"{APP_HOSTS[0]}_{PORTS[0]}") as held, \
            WeightSampler(balancer.kind) as sampler, UserTraffic(url=floating_url()) as traffic, \
            contextlib.ExitStack() as watching:
        for watcher in others.values():
            watching.enter_context(watcher)
        marks.append(time.monotonic())
        releaser = threading.Thread(target=release_after_the_drain, args=(held, sampler, seen), daemon=True)
        releaser.start()
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": version, "rollout_slow_start": SLOW_START, "rollout_slow_start_steps": 4})
        marks.append(time.monotonic())
        sampler.settle(marks[-1])
        releaser.join(timeout=60)
    marks.append(time.monotonic())
    reloads.append(balancer_reloads(host_name("lb1"), balancer.kind))
    seen["reloads"] = reloads[1] - reloads[0]
    seen["other_balancers"] = others
    record_traffic("rolling deploy, good, slow start" + (" (through the floating address)" if others else ""),
                   balancer.kind, traffic,
                   held={"instance": held.instance, "status": held.status, "error": held.error},
                   weights={f"{app}_{port}": sampler.history(f"{app}_{port}") for app in APP_HOSTS for port in PORTS},
                   weight_samples=len(sampler.samples), balancer_reloads=seen["reloads"],
                   seconds=dict(zip(("start", "deploy", "end"), (round(b - a, 1) for a, b in zip(marks, marks[1:])))))
    return result, traffic, sampler, version, (held, seen)


def test_rolling_deploy_succeeds(upgrade):
    result, _, _, _, _ = upgrade
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "batch 1" in result.stdout and "batch 2" in result.stdout


def test_every_instance_runs_the_new_version(upgrade):
    _, _, _, version, _ = upgrade
    found = versions()
    assert set(found.values()) == {("ready", version)}, found


def test_no_request_failed_during_the_deploy(upgrade):
    _, traffic, _, _, _ = upgrade
    traffic.assert_none_failed()


def test_the_deploy_waited_for_the_write_held_in_flight(upgrade):
    """The write was held past its instance's drain by DRAIN_TIMEOUT + 3 s, and it succeeded: the
    in-flight wait kept the instance running until it was done (test_zero_failed.py shows the same write
    failing through a restart that does not wait)."""
    _, _, _, _, (held, seen) = upgrade
    assert seen.get("drained"), f"the held write's instance {held.instance} was never seen drained"
    assert held.succeeded, f"the write held on {held.instance} failed: HTTP {held.status} {held.error}"


def test_a_balancer_with_a_runtime_api_is_never_reloaded_by_the_deploy(upgrade, balancer):
    """HAProxy (its runtime API) and Apache (balancer-manager) drain, weigh and return instances at runtime.
    A reload closes the clients' idle kept-alive connections, and a request sent on one as it closes
    fails: CI's run of d4c5676 lost a write so, when Apache reloaded for each slow-start step. nginx has no
    runtime API in its open-source build: it reloads, and its reloads are left out here."""
    if balancer.kind == "nginx":
        pytest.skip("open-source nginx changes its upstreams only by a reload")
    _, _, _, _, (_, seen) = upgrade
    assert seen["reloads"] == 0, f"{balancer.kind} was reloaded {seen['reloads']} times during the deploy"


def test_a_returning_batch_ramps_its_weight_up_step_by_step(upgrade):
    """app2 has capacity 3 (the stack's host_vars): drained while it moves, back at 25 % (1 of 3), then 50 %
    (2), then all of it."""
    _, _, sampler, _, _ = upgrade
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


def test_every_other_balancer_of_a_pair_drained_every_instance(upgrade):
    """A batch is out, and back, only once every balancer says so: lb2 drained each instance too."""
    _, _, _, _, (_, seen) = upgrade
    if not seen["other_balancers"]:
        pytest.skip("one lb host")
    names = {f"{app}_{port}" for app in APP_HOSTS for port in PORTS}
    for lb, watcher in seen["other_balancers"].items():
        drained = {name for name in names if 0 in watcher.history(name)}
        assert drained == names, f"{lb} never drained {sorted(names - drained)}"


def test_after_the_deploy_each_balancer_still_names_itself(upgrade):
    """The rollout renders each balancer's runtime config delegated from the first lb host, whose inventory_hostname
    is its own: lb2 once answered X-Balancer: lb1 after every deploy (lb_runtime_host mends it). Only a pair's
    balancers name themselves."""
    if len(lb_hosts()) < 2:
        pytest.skip("one lb host")
    named = {lb: vip_client().balancer_said(host_address(lb), timeout=5) for lb in lb_hosts()}
    assert named == {lb: (200, lb) for lb in lb_hosts()}, named


def test_the_balancer_serves_every_instance_afterwards(upgrade):
    """40 requests from the balancer's host, in one exec."""
    seen = served_instances(host_name("lb1"))
    assert {f"{app}:{port}" for app in APP_HOSTS for port in PORTS} <= seen


@pytest.fixture(scope="module")
def failed_upgrade():
    """Deploy BROKEN_VERSION (readiness always 503) under traffic."""
    wait_until_ready(APP_HOSTS[1])
    previous = fleet_version()
    untouched_before = main_pids(APP_HOSTS[1])
    with UserTraffic() as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": BROKEN_VERSION, "app_fail_readiness": True, "rollout_gate_timeout": 10})
    record_traffic("rolling deploy, failing, rolled back", active_kind(), traffic)
    return result, traffic, untouched_before, previous


FAILING_DEPLOY_WITH = pytest.mark.once_with_balancer(0)
ROLLBACK_ALL_WITH = pytest.mark.once_with_balancer(1)


@FAILING_DEPLOY_WITH
def test_a_failing_version_stops_the_rollout_naming_the_instance(failed_upgrade):
    result, _, _, _ = failed_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 1 of 2" in output, output[-4000:]
    assert f"{APP_HOSTS[0]}_8000" in output
    assert "forced by APP_FAIL_READINESS" in output


@FAILING_DEPLOY_WITH
def test_the_failed_batch_is_back_on_the_previous_version(failed_upgrade):
    _, _, _, previous = failed_upgrade
    for port, (_, body) in instances(APP_HOSTS[0]).items():
        assert (body.get("status"), body.get("version")) == ("ready", previous), (port, body)


@FAILING_DEPLOY_WITH
def test_the_batches_not_reached_were_not_touched(failed_upgrade):
    _, _, untouched_before, previous = failed_upgrade
    now = instances(APP_HOSTS[1])
    assert {port: pid for port, (pid, _) in now.items()} == untouched_before
    assert {port: body.get("version") for port, (_, body) in now.items()} == {port: previous for port in PORTS}


@FAILING_DEPLOY_WITH
def test_no_request_failed_during_the_failed_deploy(failed_upgrade):
    _, traffic, _, _ = failed_upgrade
    traffic.assert_none_failed()


@FAILING_DEPLOY_WITH
def test_the_balancer_serves_every_instance_after_the_failed_deploy(failed_upgrade):
    seen = served_instances(host_name("lb1"))
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


def test_an_in_flight_count_it_cannot_read_stops_the_deploy_naming_the_instance():
    """A wrong rollout_in_flight_path (404 on every instance) must not turn the in-flight wait off: the
    deploy stops before anything changes, naming each instance and what it answered."""
    wait_until_ready(APP_HOSTS[1])
    before = {app_host: main_pids(app_host) for app_host in APP_HOSTS}
    result = run_playbook("playbooks/rolling_deploy.yml", {
        "app_version": another_good_version(fleet_version()), "rollout_in_flight_path": "/health/no-such-metrics"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "could not read that count on: " in output, output[-4000:]
    for app_host in APP_HOSTS:
        for port in PORTS:
            assert f"{app_host}_{port}: HTTP 404 from http://" in output, output[-4000:]
    assert "rollout_in_flight_path (/health/no-such-metrics) must be the app's metrics" in output
    assert "No host was changed" in output
    assert set(changed_counts(result.stdout).values()) == {0}, changed_counts(result.stdout)
    assert {app_host: main_pids(app_host) for app_host in APP_HOSTS} == before


@pytest.fixture(scope="module")
def rollback_all_upgrade(tmp_path_factory):
    """Deploy ROLLBACK_ALL_VERSION with rollout_on_failure rollback_all, where only app2's readiness fails
    (a host variable in an extra inventory): batch 1 passes, batch 2 fails, and both go back. The three
    rollout hooks record, in order, what each saw (molecule/resources/tasks/record_rollout_hook.yml)."""
    wait_until_ready(APP_HOSTS[1])
    previous = fleet_version()
    extra_inventory = tmp_path_factory.mktemp("inventory") / "fail_app2.yml"
    extra_inventory.write_text(json.dumps({"app": {"hosts": {APP_HOSTS[1]: {"app_fail_readiness": True}}}}))
    hook_record = extra_inventory.parent / "hooks.jsonl"
    hooks = {f"rollout_{hook}_tasks_file": HOOK_TASKS for hook in ("before_batch", "before_activate", "after_batch")}
    with UserTraffic() as traffic:
        result = run_playbook("playbooks/rolling_deploy.yml", {
            "app_version": ROLLBACK_ALL_VERSION, "rollout_on_failure": "rollback_all", "rollout_gate_timeout": 10,
            **hooks, "hook_record": str(hook_record)}, extra_inventory=str(extra_inventory))
    record_traffic("rolling deploy, rollback_all", active_kind(), traffic)
    records = [json.loads(line) for line in hook_record.read_text().splitlines()] if hook_record.exists() else []
    return result, traffic, previous, records


@ROLLBACK_ALL_WITH
def test_rollback_all_stops_at_the_failing_batch_and_says_the_others_went_back(rollback_all_upgrade):
    result, _, _, _ = rollback_all_upgrade
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "stopped at batch 2 of 2" in output, output[-4000:]
    assert "Batches 1 went back too (rollout_on_failure: rollback_all)" in output, output[-4000:]


@ROLLBACK_ALL_WITH
def test_rollback_all_leaves_the_whole_fleet_on_the_previous_version(rollback_all_upgrade):
    _, _, previous, _ = rollback_all_upgrade
    found = versions()
    assert set(found.values()) == {("ready", previous)}, found
    weights = live_weights(active_kind())
    assert all(weights[f"{app}_{port}"] > 0 for app in APP_HOSTS for port in PORTS), weights


@ROLLBACK_ALL_WITH
def test_no_request_failed_during_the_rollback_all(rollback_all_upgrade):
    _, traffic, _, _ = rollback_all_upgrade
    traffic.assert_none_failed()


@ROLLBACK_ALL_WITH
def test_the_rollout_hooks_ran_around_each_batch_with_what_they_saw(rollback_all_upgrade):
    """Before each batch, before each activation (the rollbacks' too) and after each batch that passed, in
    that order, each seeing its batch and, before an activation, the version each host is about to run."""
    _, _, previous, records = rollback_all_upgrade
    app1, app2 = APP_HOSTS
    seen = [(record["hook"], record["batch"], record["hosts"], record["versions"]) for record in records]
    assert seen == [
        ("before_batch", 1, [app1], {}),
        ("before_activate", 1, [app1], {app1: ROLLBACK_ALL_VERSION}),
        ("after_batch", 1, [app1], {}),
        ("before_batch", 2, [app2], {}),
        ("before_activate", 2, [app2], {app2: ROLLBACK_ALL_VERSION}),
        ("before_activate", 2, [app2], {app2: previous}),  # batch 2 goes back
        ("before_activate", 1, [app1], {app1: previous}),  # and, with rollback_all, batch 1
    ], seen
    assert records[0]["instances"] == [f"{app1}_{port}" for port in PORTS], records[0]


# site.yml restarts changed instances only through the rolling path (issue 33): a config change, under
# the users' traffic, and the change back. Once, on the balancer the stack runs last (the lab runs it per
# balancer: make lab-test KIND=...).
# A converge never undoes a deploy (issue 34): site.yml with the inventory as it is, while the fleet runs
# the version a deploy put there, stops before any host changes; with app_converge_version it rolls the
# fleet to the inventory's version, batch by batch (config_converge, below, with a config change).
@pytest.fixture(scope="module")
def refused_converge():
    """(result, the version the fleet runs, instances before, after): site.yml with no extra variable while
    the fleet runs another version than the inventory's (make test's deploys leave one; on a lab still on
    the inventory's version, one is deployed first)."""
    if fleet_version() == INVENTORY_VERSION:
        deployed = run_playbook("playbooks/rolling_deploy.yml", {"app_version": another_good_version(INVENTORY_VERSION)})
        assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-3000:]
    running = fleet_version()
    before = {app: instances(app) for app in APP_HOSTS}
    result = run_playbook("site.yml", {})
    return result, running, before, {app: instances(app) for app in APP_HOSTS}


def test_a_converge_against_a_deployed_version_stops_naming_both_versions_and_the_ways_out(refused_converge):
    result, running, _, _ = refused_converge
    output = result.stdout + result.stderr
    assert running != INVENTORY_VERSION
    assert result.returncode != 0, output[-3000:]
    assert f"The fleet runs {running}, and the inventory's app_version is {INVENTORY_VERSION}" in output, output[-3000:]
    assert f'set app_version: "{running}" in the inventory' in output
    assert f"make deploy VERSION={INVENTORY_VERSION}, or site.yml -e app_converge_version=true" in output


def test_the_refused_converge_changed_no_host_and_no_instance(refused_converge):
    """Each instance answers readiness with the version it ran before, from the same process."""
    result, running, before, after = refused_converge
    assert set(changed_counts(result.stdout).values()) == {0}, result.stdout[-3000:]
    assert after == before
    assert {readiness.get("version") for app in APP_HOSTS for _, readiness in after[app].values()} == {running}


# One app setting changed: the stack keeps it from here on (the later converges pass it, or change it on
# purpose), so that one rolling converge covers both the config change and the version roll.
CONFIG_CHANGE = {"app_log_level": "warning"}


def config_links() -> dict[str, str]:
    return {app: container(app).check_output(f"readlink {APP_ENV_LINK}") for app in APP_HOSTS}


@pytest.fixture(scope="module")
def config_converge(refused_converge):
    """(result, traffic, PIDs before, after, config links before, after): site.yml with the inventory's
    version (not the one the fleet runs) and one app setting changed, app_converge_version true, under
    traffic: the fleet moves to the inventory's version and the new config, batch by batch."""
    before, links_before = {app: main_pids(app) for app in APP_HOSTS}, config_links()
    with UserTraffic() as traffic:
        result = run_playbook("site.yml", {"app_converge_version": True, **CONFIG_CHANGE})
    record_traffic("site.yml, one app setting changed, app_converge_version", active_kind(), traffic)
    return result, traffic, before, {app: main_pids(app) for app in APP_HOSTS}, links_before, config_links()


def test_a_config_change_by_site_restarts_every_instance_batch_by_batch(config_converge):
    result, _, before, after, links_before, links_after = config_converge
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "4 instance(s) restart, in 2 batch(es)" in output, output[-4000:]
    # The app role's own restart (restart_instance.yml) is for a fleet no balancer serves yet.
    assert "TASK [app : Restart the instance on port" not in output, "the app role restarted instances itself"
    assert all(after[app][port] != before[app][port] for app in APP_HOSTS for port in PORTS), (before, after)
    assert all(links_after[app] != links_before[app] for app in APP_HOSTS), (links_before, links_after)


def test_the_switch_rolls_every_instance_to_the_inventorys_version(config_converge):
    """With app_converge_version the release changed with the config, through the same batches (the test
    above), and every instance answers ready with the inventory's version."""
    result, _, _, _, _, _ = config_converge
    assert "app_converge_version is true" in result.stdout, result.stdout[-3000:]
    assert set(versions().values()) == {("ready", INVENTORY_VERSION)}, versions()


INSTANCES_SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "app" / "files" / "instances.py"


def stale_ports(app_host: str) -> list[int]:
    """What the app role's own reading (roles/app/files/instances.py) finds stale now, against the
    release and config the host's links point at: what the next site.yml would restart there."""
    script = base64.b64encode(INSTANCES_SCRIPT.read_bytes()).decode()
    output = container(app_host).check_output(
        f"echo {script} | base64 -d > /run/instances-check.py && python3 /run/instances-check.py inventory"
        f" $(readlink -f /opt/inventory/current) {APP_ENV_LINK} $(readlink -f {APP_ENV_LINK})"
        f" /etc/systemd/system/inventory@.service {' '.join(map(str, PORTS))}; rm -f /run/instances-check.py")
    return json.loads(output)["stale_ports"]


def test_instances_just_restarted_by_the_rolling_path_are_not_stale(config_converge):
    """Each instance started a few milliseconds after its config link was switched: the next converge
    must not restart it again (make up on a running lab restarts nothing)."""
    assert {app: stale_ports(app) for app in APP_HOSTS} == {app: [] for app in APP_HOSTS}


def test_no_request_failed_during_the_config_change_and_the_version_roll(config_converge):
    _, traffic, _, _, _, _ = config_converge
    traffic.assert_none_failed()


# A config the service accepts (--check-config) but whose readiness fails: the database password is
# wrong. site.yml stages it on every host, batch 1 gets it and fails its gate, goes back to the config it
# ran, and batch 2 never runs it. Before issue 33 the same change restarted the whole fleet onto it.
FAILING_CONFIG = {"app_db_password": "not-the-database-password", "rollout_gate_timeout": 10}
# An app setting changes only the app hosts and the restarts behind the balancer: these converges run as an
# operator would run them, on those hosts alone (the Redis and database plays, 15 s, are left out).
APP_AND_BALANCER = ["--limit", "app:lb"]


@pytest.fixture(scope="module")
def failing_config_converge(config_converge):
    """(result, traffic, config links before, after, PIDs before, after): site.yml with FAILING_CONFIG
    under traffic."""
    for app in APP_HOSTS:
        wait_until_ready(app)
    links_before, before = config_links(), {app: main_pids(app) for app in APP_HOSTS}
    with UserTraffic() as traffic:
        result = run_playbook("site.yml", {"app_version": fleet_version(), **CONFIG_CHANGE, **FAILING_CONFIG},
                              extra_args=APP_AND_BALANCER)
    links_after, after = config_links(), {app: main_pids(app) for app in APP_HOSTS}
    record_traffic("site.yml, a config that fails readiness", active_kind(), traffic)
    return result, traffic, links_before, links_after, before, after


def test_a_config_that_fails_readiness_stops_site_after_the_first_batch(failing_config_converge):
    result, _, _, _, _, _ = failing_config_converge
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "stopped at batch 1 of 2" in output, output[-4000:]
    assert f"{APP_HOSTS[0]}_8000" in output
    assert "Batch 1 went back to its previous release and config, and into the balancer" in output


def test_the_failed_batch_is_back_on_its_previous_config_and_ready(failing_config_converge):
    _, _, links_before, links_after, before, after = failing_config_converge
    assert links_after == links_before
    assert all(after[APP_HOSTS[0]][port] != before[APP_HOSTS[0]][port] for port in PORTS), (before, after)
    found = versions()
    assert all(found[f"{APP_HOSTS[0]}:{port}"][0] == "ready" for port in PORTS), found


def test_the_batch_not_reached_never_ran_the_failing_config(failing_config_converge):
    _, _, links_before, links_after, before, after = failing_config_converge
    assert after[APP_HOSTS[1]] == before[APP_HOSTS[1]]
    # Staged beside the running config, and not switched to.
    staged = container(APP_HOSTS[1]).check_output("ls /etc/inventory/configs").split()
    assert len(staged) >= 2 and links_after[APP_HOSTS[1]] == links_before[APP_HOSTS[1]], staged


def test_no_request_failed_during_the_failing_config(failing_config_converge):
    _, traffic, _, _, _, _ = failing_config_converge
    traffic.assert_none_failed()


def test_a_converge_against_a_degraded_fleet_stops_before_any_restart(failing_config_converge):
    """One instance hung (SIGSTOP: systemd sees it running, so the app role's start does not mend it, but its
    readiness never answers), and a config change for all (a log level the fleet does not run): site.yml
    refuses before the first batch, naming the instance, as the rolling deploy does; no instance restarts
    and no config link moves."""
    app2 = container(APP_HOSTS[1])
    for app in APP_HOSTS:
        wait_until_ready(app)
    links_before, before = config_links(), main_pids(APP_HOSTS[0])
    app2.check_output("systemctl kill --signal=SIGSTOP inventory@8001.service")
    try:
        result = run_playbook("site.yml", {"app_version": fleet_version(), "app_log_level": "error"},
                              extra_args=APP_AND_BALANCER)
    finally:
        app2.check_output("systemctl kill --signal=SIGCONT inventory@8001.service")
        wait_until_ready(APP_HOSTS[1])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{APP_HOSTS[1]}_8001 not ready now" in output, output[-3000:]
    assert main_pids(APP_HOSTS[0]) == before
    assert config_links() == links_before


def test_a_converge_limited_to_one_app_host_and_the_balancer_keeps_every_backend():
    """site.yml --limit app1,lb (every lb host: a run that leaves one out is refused): the balancer's backends
    are still every app host's instances at their addresses (playbooks/app_facts.yml reads the facts of the
    app hosts left out); without it app2's instances were rendered at app2's name, and the balancer reloaded."""
    lb = host_name("lb1")
    balancers = stack().groups()["lb"]
    config = BALANCER_CONFIGS[active_kind()]
    before = container(lb).check_output(f"sha256sum {config}")
    # The fleet's version and log level as it runs them (the converges above change the level): nothing to change.
    level = container(APP_HOSTS[0]).check_output(f"sed -n 's/^LOG_LEVEL=//p' {APP_ENV_LINK}").strip().strip('"')
    result = run_playbook("site.yml", {"app_version": fleet_version(), "app_log_level": level},
                          extra_args=["--limit", f"{APP_HOSTS[0]},lb"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # app1 may prune a config the refused converge above staged; the balancers change nothing.
    changed = changed_counts(result.stdout)
    assert set(changed) == {APP_HOSTS[0], *balancers} and all(changed[name] == 0 for name in balancers), \
        result.stdout[-3000:]
    assert container(lb).check_output(f"sha256sum {config}") == before
    rendered = container(lb).check_output(f"cat {config}")
    for app in APP_HOSTS:
        address = host_address(app, private=True)
        assert all(f"{address}:{port}" in rendered for port in PORTS), (app, address)
