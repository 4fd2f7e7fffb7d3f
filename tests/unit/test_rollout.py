"""Specification of the rolling deploy's planning filters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

import rollout

FILTERS = rollout.FilterModule().filters()
REPO_ROOT = Path(__file__).resolve().parents[2]


def fleet(*ports_per_host: int) -> list[dict]:
    """Backends as app_backends makes them: hosts app1..appN, ports from 8000."""
    return [
        {"name": f"app{h}_{8000 + p}", "host": f"app{h}", "address": f"10.0.0.{h}", "port": 8000 + p, "capacity": 1}
        for h, count in enumerate(ports_per_host, start=1)
        for p in range(count)
    ]


def hosts_of(batches: list[dict]) -> list[list[str]]:
    return [batch["hosts"] for batch in batches]


def test_default_is_one_host_per_batch_in_inventory_order():
    batches = rollout.rollout_batches(fleet(2, 2, 2))
    assert hosts_of(batches) == [["app1"], ["app2"], ["app3"]]
    assert [batch["number"] for batch in batches] == [1, 2, 3]
    assert [b["name"] for b in batches[1]["backends"]] == ["app2_8000", "app2_8001"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [(2, [["app1", "app2"], ["app3", "app4"], ["app5"]]), ("2", [["app1", "app2"], ["app3", "app4"], ["app5"]]),
     ("25%", [["app1", "app2"], ["app3", "app4"], ["app5"]]), ("20%", [["app1"], ["app2"], ["app3"], ["app4"], ["app5"]]),
     ("100%", [["app1", "app2", "app3", "app4", "app5"]])],
)
def test_batch_size_as_count_or_percentage_of_hosts(size, expected):
    batches = rollout.rollout_batches(fleet(1, 1, 1, 1, 1), size, max_unavailable="100%", min_healthy=0)
    assert hosts_of(batches) == expected


def test_percentage_rounds_up_to_at_least_one_host():
    assert rollout.batch_host_count("1%", 20) == 1
    assert rollout.batch_host_count("25%", 20) == 5
    assert rollout.batch_host_count("25%", 10) == 3
    assert rollout.batch_host_count(50, 3) == 3


def test_a_batch_larger_than_one_host_needs_a_larger_max_unavailable():
    with pytest.raises(rollout.RolloutError, match=r"rollout_max_unavailable allows \(2\)"):
        rollout.rollout_batches(fleet(2, 2, 2, 2), "50%")
    assert hosts_of(rollout.rollout_batches(fleet(2, 2, 2, 2), "50%", "50%")) == [["app1", "app2"], ["app3", "app4"]]


def test_default_max_unavailable_is_the_largest_hosts_instances():
    assert rollout.max_unavailable_instances(None, fleet(2, 3, 1)) == 3
    assert rollout.max_unavailable_instances("", fleet(2)) == 2
    assert rollout.max_unavailable_instances("50%", fleet(2, 3, 1)) == 3
    assert rollout.max_unavailable_instances(4, fleet(2, 3, 1)) == 4


def test_a_degraded_fleet_stops_before_anything_and_names_the_unready_instance():
    with pytest.raises(rollout.RolloutError, match=r"app2_8001 not ready now.*bring the unready instances back"):
        rollout.rollout_batches(fleet(2, 2), not_ready=["app2_8001"])


def test_an_unready_instance_inside_the_batch_does_not_count_twice():
    batches = rollout.rollout_batches(fleet(2, 2, 2), not_ready=["app1_8000"], max_unavailable=3)
    # Batch 1 holds the unready instance: 2 unavailable. Batches 2 and 3: 2 + 1 = 3.
    assert hosts_of(batches) == [["app1"], ["app2"], ["app3"]]
    with pytest.raises(rollout.RolloutError, match="batch 2"):
        rollout.rollout_batches(fleet(2, 2, 2), not_ready=["app1_8000"])


def test_min_healthy_keeps_enough_ready_instances_outside_the_batch():
    with pytest.raises(rollout.RolloutError, match=r"leave 2 ready instance\(s\).*rollout_min_healthy \(3\)"):
        rollout.rollout_batches(fleet(2, 2), min_healthy=3)
    assert len(rollout.rollout_batches(fleet(2, 2), min_healthy=2)) == 2


def test_one_host_alone_cannot_roll_with_min_healthy_one():
    with pytest.raises(rollout.RolloutError, match="rollout_min_healthy"):
        rollout.rollout_batches(fleet(2))


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [({"batch_size": 0}, "rollout_batch_size"), ({"batch_size": "0%"}, "rollout_batch_size"),
     ({"batch_size": "150%"}, "rollout_batch_size"), ({"batch_size": "half"}, "rollout_batch_size"),
     ({"batch_size": True}, "rollout_batch_size"), ({"max_unavailable": -1}, "rollout_max_unavailable"),
     ({"max_unavailable": "lots"}, "rollout_max_unavailable"), ({"min_healthy": -1}, "rollout_min_healthy"),
     ({"min_healthy": "x"}, "rollout_min_healthy")],
)
def test_bad_settings_name_the_variable(kwargs, variable):
    with pytest.raises(rollout.RolloutError, match=variable):
        rollout.rollout_batches(fleet(2, 2, 2), **kwargs)


def test_bad_backends_and_unknown_unready_names_are_refused():
    with pytest.raises(rollout.RolloutError, match=r"\[app\]"):
        rollout.rollout_batches([])
    with pytest.raises(rollout.RolloutError, match="app_backends"):
        rollout.rollout_batches("app1")
    with pytest.raises(rollout.RolloutError, match="unknown instances: app9_8000"):
        rollout.rollout_batches(fleet(2, 2), not_ready=["app9_8000"])


def test_the_filter_raises_an_ansible_error():
    with pytest.raises(AnsibleFilterError, match="rollout_batch_size"):
        FILTERS["rollout_batches"](fleet(2, 2), 0)


def test_scaled_backends_cuts_only_the_named_weights():
    backends = [dict(b, weight=w) for b, w in zip(fleet(2, 2), [10, 10, 3, 0])]
    scaled = rollout.scaled_backends(backends, 25, ["app1_8000", "app2_8000", "app2_8001"])
    assert [b["weight"] for b in scaled] == [3, 10, 1, 0]
    assert [b["weight"] for b in backends] == [10, 10, 3, 0]  # input untouched
    with pytest.raises(rollout.RolloutError, match="slow-start step"):
        rollout.scaled_backends(backends, 0, [])


def test_slow_start_steps():
    assert rollout.slow_start_steps(0, 4) == [100]
    assert rollout.slow_start_steps(20, 4) == [25, 50, 75, 100]
    assert rollout.slow_start_steps(9, 3) == [34, 67, 100]
    assert rollout.slow_start_steps("6", "3") == [34, 67, 100]  # extra vars arrive as strings
    with pytest.raises(rollout.RolloutError, match="rollout_slow_start_steps must be a whole number >= 1.*'many'"):
        rollout.slow_start_steps(10, "many")
    with pytest.raises(rollout.RolloutError, match="rollout_slow_start "):
        rollout.slow_start_steps(-1, 4)
    with pytest.raises(rollout.RolloutError, match="rollout_slow_start_steps"):
        rollout.slow_start_steps(10, 0)


def batch(*weights):
    return [dict(backend, weight=weight) for backend, weight in zip(fleet(1, len(weights)), weights)]


def test_slow_start_ramp_keeps_only_the_steps_that_change_a_weight():
    steps = rollout.slow_start_steps(8, 4)  # [25, 50, 75, 100], 2 s apart
    # Weight 3: 1, 2, 3, 3. The last step changes nothing, so it goes with its pause.
    assert rollout.slow_start_ramp(batch(3, 3), steps, 8) == [
        {"percent": 25, "seconds": 0}, {"percent": 50, "seconds": 2}, {"percent": 75, "seconds": 2}]
    # Weight 1 weighs 1 at every step: back at full weight at once, no pause.
    assert rollout.slow_start_ramp(batch(1, 1), steps, 8) == [{"percent": 25, "seconds": 0}]
    # Weight 0 (capacity 0) never changes either.
    assert rollout.slow_start_ramp(batch(0), steps, 8) == [{"percent": 25, "seconds": 0}]
    # Steps that change nothing in the middle give their pauses to the next one that does: in 6 steps
    # (17, 34, 50, 67, 84, 100 %, 2 s apart), weight 2 is 1 up to 50 % and 2 from 67 %.
    assert rollout.slow_start_ramp(batch(2), rollout.slow_start_steps(12, 6), 12) == [
        {"percent": 17, "seconds": 0}, {"percent": 67, "seconds": 6}]
    # One backend that changes is enough to keep a step: 1 and 4 together ramp 1, 2, 3, 4.
    assert [step["percent"] for step in rollout.slow_start_ramp(batch(1, 4), steps, 8)] == [25, 50, 75, 100]
    # Every step kept: the pauses are slow_start_steps' (seconds / steps, rounded up).
    assert [step["seconds"] for step in rollout.slow_start_ramp(batch(100), steps, 10)] == [0, 3, 3, 3]
    # No slow start: one step, at full weight.
    assert rollout.slow_start_ramp(batch(3), rollout.slow_start_steps(0, 4), 0) == [{"percent": 100, "seconds": 0}]


def test_slow_start_ramp_refuses_what_it_cannot_use():
    with pytest.raises(rollout.RolloutError, match="slow_start_steps"):
        rollout.slow_start_ramp(batch(3), [], 8)
    with pytest.raises(rollout.RolloutError, match="rollout_slow_start must be a number"):
        rollout.slow_start_ramp(batch(3), [50, 100], "soon")
    with pytest.raises(AnsibleFilterError, match="slow_start_steps"):
        FILTERS["slow_start_ramp"](batch(3), "25,100", 8)


def test_report_lists_every_instance_and_batch():
    before = {"app1_8000": {"version": "1.0.0", "ready": True}, "app2_8000": {"version": "1.0.0", "ready": True}}
    after = {"app1_8000": {"version": "1.1.0", "ready": True},
             "app2_8000": {"version": "1.0.0", "ready": False, "reason": "draining"}}
    lines = rollout.rollout_report(before, after, [
        {"number": 1, "hosts": ["app1"], "outcome": "upgraded", "seconds": 12.25},
        {"number": 2, "hosts": ["app2"], "outcome": "rolled back", "seconds": 20},
    ])
    assert lines[1].split() == ["app1_8000", "1.0.0", "1.1.0", "yes"]
    assert lines[2].split()[:4] == ["app2_8000", "1.0.0", "1.0.0", "NO"] and "draining" in lines[2]
    assert lines[3] == "batch 1 (app1): upgraded in 12.2 s"
    assert lines[-1] == "total: 32.2 s over 2 batch(es)"


def test_apache_members_out_of_service_matches_address_and_port():
    backends = fleet(2, 2)
    def member(address, port, status="Init Ok ", drained=False):
        return {"host": address, "port": str(port), "attributes": {"Status": status},
                "status": {"drained": drained, "disabled": False}}
    members = [member("10.0.0.1", 8000), member("10.0.0.1", 8001, drained=True),
               member("10.0.0.2", 8000, status="Init HcFl "), member("10.0.0.2", 8001)]
    assert rollout.apache_members_out_of_service(backends, members) == ["app1_8001", "app2_8000"]
    assert rollout.apache_members_out_of_service(backends, []) == [b["name"] for b in backends]


def balancer_member(address, port, factor="1.00", status="Init Ok ", drained=False, disabled=False):
    """One member as community.general.apache2_mod_proxy returns it."""
    url = f"http://127.0.0.1:8081/balancer-manager?b=rollgate&w=http://{address}:{port}&nonce=n-1"
    return {"host": address, "port": str(port), "attributes": {"Status": status, "Factor": factor},
            "status": {"drained": drained, "disabled": disabled}, "management_url": url}


def weighted(backends, weights, drained=()):
    return [dict(backend, weight=weight, drained=backend["name"] in drained)
            for backend, weight in zip(backends, weights)]


def member_change(name, address, port, factor, drained):
    return {"name": name, "url": "http://127.0.0.1:8081/balancer-manager", "form": {
        "b": "rollgate", "w": f"http://{address}:{port}", "nonce": "n-1", "w_lf": str(factor),
        "w_status_N": "1" if drained else "0", "w_status_D": "0"}}


def test_apache_runtime_plan_drains_and_returns_members_without_reload():
    backends = weighted(fleet(2, 2), [3, 3, 1, 1], drained=["app2_8000", "app2_8001"])
    members = [balancer_member("10.0.0.1", 8000, "3.00"), balancer_member("10.0.0.1", 8001, "3.00"),
               balancer_member("10.0.0.2", 8000), balancer_member("10.0.0.2", 8001)]
    assert rollout.apache_runtime_plan(backends, members) == {"reload_because": "", "changes": [
        member_change("app2_8000", "10.0.0.2", 8000, 1, True), member_change("app2_8001", "10.0.0.2", 8001, 1, True)]}
    # Already drained: nothing to change. Back in service: one change per member.
    members[2]["status"]["drained"] = members[3]["status"]["drained"] = True
    assert rollout.apache_runtime_plan(backends, members)["changes"] == []
    returned = weighted(fleet(2, 2), [3, 3, 1, 1])
    assert [change["name"] for change in rollout.apache_runtime_plan(returned, members)["changes"]] == [
        "app2_8000", "app2_8001"]
    # Half a host drained: each member is set on its own.
    half = weighted(fleet(2, 2), [3, 3, 1, 1], drained=["app2_8001"])
    assert rollout.apache_runtime_plan(half, members)["changes"] == [
        member_change("app2_8000", "10.0.0.2", 8000, 1, False)]


def test_apache_runtime_plan_sets_a_slow_start_step_without_reload():
    members = [balancer_member("10.0.0.1", 8000, "3.00"), balancer_member("10.0.0.2", 8000)]
    plan = rollout.apache_runtime_plan(weighted(fleet(1, 1), [1, 1]), members)
    assert plan == {"reload_because": "", "changes": [member_change("app1_8000", "10.0.0.1", 8000, 1, False)]}
    # A weight of 0 (no capacity) is drained at load factor 1, Apache's smallest.
    plan = rollout.apache_runtime_plan(weighted(fleet(1, 1), [3, 0], drained=["app2_8000"]), members)
    assert plan == {"reload_because": "", "changes": [member_change("app2_8000", "10.0.0.2", 8000, 1, True)]}
    # A disabled member (an operator's "Dis" in balancer-manager) is enabled again.
    members[1]["status"]["disabled"] = True
    plan = rollout.apache_runtime_plan(weighted(fleet(1, 1), [3, 1]), members)
    assert plan["changes"] == [member_change("app2_8000", "10.0.0.2", 8000, 1, False)]


def test_apache_runtime_plan_reloads_when_the_members_differ():
    members = [balancer_member("10.0.0.1", 8000, "3.00"), balancer_member("10.0.0.2", 8000)]
    plan = rollout.apache_runtime_plan(weighted(fleet(1, 2), [3, 1, 1]), members)
    assert plan["changes"] == [] and "not running: app2_8001" in plan["reload_because"]
    plan = rollout.apache_runtime_plan(weighted(fleet(1), [3]), members)
    assert "running but not wanted: 10.0.0.2:8000" in plan["reload_because"]
    # No link to set a member by (balancer-manager's page changed shape): a reload, never a guess.
    members[1]["management_url"] = ""
    plan = rollout.apache_runtime_plan(weighted(fleet(1, 1), [3, 2]), members)
    assert plan["reload_because"] == "balancer-manager gave no link with b, w and nonce for app2_8000"


def test_batch_check_uses_readiness_seen_now():
    backends = fleet(2, 2, 2)
    batch = rollout.rollout_batches(backends)[1]
    assert rollout.rollout_batch_check(batch, backends) is batch
    with pytest.raises(rollout.RolloutError, match=r"batch 2 \(app2\).*app3_8000 not ready now"):
        rollout.rollout_batch_check(batch, backends, not_ready=["app3_8000"])


def test_unreadable_instances_are_grouped_by_host_in_backend_order():
    unreadable = {"app2_8001": "HTTP 404", "app1_8000": "HTTP 403", "app2_8000": "no answer"}
    assert FILTERS["in_flight_unread_by_host"](unreadable, fleet(2, 2)) == [
        {"host": "app1", "names": ["app1_8000"], "ports": [8000]},
        {"host": "app2", "names": ["app2_8000", "app2_8001"], "ports": [8000, 8001]},
    ]
    assert rollout.in_flight_unread_by_host({}, fleet(2, 2)) == []


def test_only_a_stopped_or_failed_instance_is_excused_from_the_in_flight_count():
    unreadable = {"app1_8000": "HTTP 404 from http://10.0.0.1:8000/x", "app1_8001": "no answer",
                  "app2_8000": "no answer", "app2_8001": "HTTP 403"}
    answers = [
        {"item": {"host": "app1", "names": ["app1_8000", "app1_8001"], "ports": [8000, 8001]},
         "stdout_lines": ["active", "failed"]},
        # systemctl itself failed: no states, so both count as running.
        {"item": {"host": "app2", "names": ["app2_8000", "app2_8001"], "ports": [8000, 8001]}, "stdout_lines": []},
    ]
    assert FILTERS["in_flight_unread_running"](unreadable, answers) == [
        "app1_8000 (systemd: active): HTTP 404 from http://10.0.0.1:8000/x",
        "app2_8000 (systemd: unknown): no answer",
        "app2_8001 (systemd: unknown): HTTP 403",
    ]
    stopped = [{"item": {"host": "app1", "names": ["app1_8000"], "ports": [8000]}, "stdout_lines": ["inactive"]}]
    assert rollout.in_flight_unread_running({"app1_8000": "no answer"}, stopped) == []


# restart_batches: what site.yml restarts, batch by batch (issue 33)

def test_a_restart_touches_only_the_stale_instances_of_the_stale_hosts_renumbered():
    plan = rollout.rollout_batches(fleet(2, 2, 2), 1)
    batches = rollout.restart_batches(plan, {"app1": [], "app2": [8001], "app3": [8000, 8001]})
    assert hosts_of(batches) == [["app2"], ["app3"]]
    assert [batch["number"] for batch in batches] == [1, 2]
    assert [[b["name"] for b in batch["backends"]] for batch in batches] == [["app2_8001"], ["app3_8000", "app3_8001"]]


def test_a_restart_keeps_the_plans_batches_and_drops_hosts_with_nothing_stale():
    plan = rollout.rollout_batches(fleet(1, 1, 1, 1), 2, max_unavailable="100%", min_healthy=0)
    batches = rollout.restart_batches(plan, {"app2": [8000], "app3": [8000], "app4": [8000]})
    assert hosts_of(batches) == [["app2"], ["app3", "app4"]]


def test_nothing_stale_means_no_batch():
    plan = rollout.rollout_batches(fleet(2, 2))
    assert rollout.restart_batches(plan, {}) == []
    assert rollout.restart_batches(plan, {"app1": [], "app9": [8000]}) == []


def test_stale_ports_that_are_not_a_mapping_are_refused():
    with pytest.raises(AnsibleFilterError, match="map each host to its ports"):
        FILTERS["restart_batches"](rollout.rollout_batches(fleet(2, 2)), [8000])


# -- rollout_settings_check: every numeric setting against its range, before any host ---------------------

def test_the_settings_check_returns_the_numbers_read_from_strings():
    """Extra vars arrive as strings."""
    assert rollout.rollout_settings_check({"rollout_drain_timeout": "30", "rollout_slow_start": "2.5",
                                           "rollout_in_flight_path": "/health/metrics"}) == {
        "rollout_drain_timeout": 30, "rollout_slow_start": 2.5}


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("rollout_drain_timeout", -1, "rollout_drain_timeout must be a whole number >= 0 (such as 60), got -1"),
    ("rollout_gate_successes", 0, "rollout_gate_successes must be a whole number >= 1 (such as 2), got 0"),
    ("rollout_gate_timeout", "0", "rollout_gate_timeout must be a whole number >= 1"),
    ("rollout_balancer_timeout", 2.5, "rollout_balancer_timeout must be a whole number >= 1"),
    ("rollout_slow_start", "soon", "rollout_slow_start must be a number >= 0"),
    ("rollout_slow_start_steps", True, "rollout_slow_start_steps must be a whole number >= 1"),
    ("rollout_min_healthy", -2, "rollout_min_healthy must be a whole number >= 0"),
    ("rollout_in_flight_path", "metrics", "rollout_in_flight_path must be the path of each instance's metrics"),
    ("rollout_in_flight_path", "/health /metrics", "starting with /"),
])
def test_a_setting_out_of_its_range_is_named_with_its_range(name, value, fragment):
    with pytest.raises(rollout.RolloutError, match=re.escape(fragment)):
        rollout.rollout_settings_check({name: value})


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(rollout.RolloutError) as error:
        rollout.rollout_settings_check({"rollout_gate_timeout": 0, "rollout_drain_timeout": -1})
    assert "rollout_gate_timeout" in str(error.value) and "rollout_drain_timeout" in str(error.value)


def test_every_number_of_the_entry_points_spec_has_a_range():
    """The spec types the settings; ROLLOUT_NUMBERS, the one table of ranges, covers each number of it."""
    spec = yaml.safe_load((REPO_ROOT / "roles" / "rollout" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["validate"]["options"]
    numbers = {name for name, option in options.items() if option.get("type") in ("int", "float")}
    assert numbers == set(rollout.ROLLOUT_NUMBERS)


def test_the_settings_check_is_a_filter():
    with pytest.raises(AnsibleFilterError, match="rollout_gate_successes"):
        FILTERS["rollout_settings_check"]({"rollout_gate_successes": 0})
