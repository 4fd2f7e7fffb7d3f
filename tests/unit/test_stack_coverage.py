"""The one stack scenario runs each balancer's drain, weights, slow start, TLS, headers, idempotence and
deploy tests, balancer by balancer, and the kind-independent tests once, last: read from the stack
tests as pytest collects them (scripts/stack_coverage.py), with no host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# Per balancer, as issue 30 lists them: each must run with every balancer.
PER_KIND = {
    "drain": "test_upgrade.py::test_the_balancer_serves_every_instance_afterwards",
    "zero failed": "test_upgrade.py::test_no_request_failed_during_the_deploy",
    "weights": "test_upgrade.py::test_the_balancer_weighs_the_instances_by_capacity",
    "slow start": "test_upgrade.py::test_a_returning_batch_ramps_its_weight_up_step_by_step",
    "TLS": "test_security.py::test_tls_1_2_accepts_only_ecdhe_aead_ciphers",
    "headers": "test_security.py::test_https_responses_carry_the_security_headers",
    "no secret in the output that made the stack run it": "test_security.py::test_no_secret_in_ansible_output",
    "allowlist": "test_security.py::test_metrics_are_refused_outside_the_allowlist",
    "checker": "test_stack.py::test_the_live_balancer_config_passes_its_checker",
    "status": "test_stack.py::test_make_status_shows_each_instance_at_the_weight_the_balancer_serves_it",
    "held write waited for": "test_upgrade.py::test_the_deploy_waited_for_the_write_held_in_flight",
    "control: no in-flight wait": "test_zero_failed.py::test_a_restart_with_no_in_flight_wait_fails_the_held_write",
    "control: no gate": "test_zero_failed.py::test_a_restart_into_an_unready_config_with_no_gate_fails_requests",
    "control: all at once": "test_zero_failed.py::test_restarting_every_instance_at_once_fails_requests",
    # The balancer pair (issue 41): each kind's good deploy drains on every balancer, through the floating address.
    "pair: every balancer drains": "test_upgrade.py::test_every_other_balancer_of_a_pair_drained_every_instance",
    "pair: each balancer names itself": "test_upgrade.py::test_after_the_deploy_each_balancer_still_names_itself",
}
# The failure paths of the rolling deploy: once each, each with another balancer (its part of the run), so
# that every balancer rolls a failed batch back under traffic.
FAILURE_PATHS = {
    "failing deploy": "test_upgrade.py::test_no_request_failed_during_the_failed_deploy",
    "rollback_all": "test_upgrade.py::test_no_request_failed_during_the_rollback_all",
    "config that fails readiness": "test_upgrade.py::test_no_request_failed_during_the_failing_config",
}
# Kind-independent: run once.
ONCE = [
    "test_bad_input.py::test_an_unreachable_host_stops_the_run_before_any_host_changes",
    "test_upgrade.py::test_a_degraded_fleet_stops_the_deploy_before_anything_changes",
    "test_stack.py::test_redis_refuses_a_host_outside_the_app_group",
    "test_stack.py::test_postgresql_refuses_a_host_that_is_not_an_app_host",
    "test_data.py::test_postgresql_data_survives_a_restart",
    "test_data.py::test_redis_firewall_comes_back_when_nftables_loads_as_at_boot",
    "test_data.py::test_redis_keeps_a_key_across_a_restart",
    "test_security.py::test_postgresql_keeps_the_app_password_only_as_a_scram_verifier",
    "test_security.py::test_no_secret_in_the_app_journal",
    "test_security.py::test_site_converges_again_and_changes_nothing_but_the_balancer_it_switches",
    "test_security.py::test_the_secret_scans_find_a_planted_copy_of_every_secret",
    "test_upgrade.py::test_an_in_flight_count_it_cannot_read_stops_the_deploy_naming_the_instance",
    "test_upgrade.py::test_the_rollout_hooks_ran_around_each_batch_with_what_they_saw",
    "test_upgrade.py::test_no_request_failed_during_the_config_change_and_the_version_roll",
    "test_upgrade.py::test_a_converge_against_a_deployed_version_stops_naming_both_versions_and_the_ways_out",
    "test_upgrade.py::test_the_refused_converge_changed_no_host_and_no_instance",
    "test_upgrade.py::test_the_switch_rolls_every_instance_to_the_inventorys_version",
    "test_upgrade.py::test_a_converge_limited_to_one_app_host_and_the_balancer_keeps_every_backend",
    "test_ssh.py::test_deploy_logs_in_with_the_key_and_becomes_root_with_sudo",
    "test_ssh.py::test_root_cannot_log_in_even_with_an_authorised_key",
    "test_ssh.py::test_a_changed_host_key_is_refused",
    "test_ssh.py::test_a_host_refusing_the_key_or_sudo_stops_site_before_any_host_changes",
    # The balancer pair's, under traffic to its floating address (issue 41): once, in the last balancer's part.
    "test_pair.py::test_the_address_moves_within_3_s_when_the_holder_dies",
    "test_pair.py::test_no_request_sent_after_the_failover_fails",
    "test_pair.py::test_a_client_that_retries_sees_no_failed_request",
    "test_pair.py::test_no_request_through_the_floating_address_failed_during_the_balancer_restart",
]


@pytest.fixture(scope="module")
def report() -> dict:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "stack_coverage.py"), "--json"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    data["rows"] = {f"{row['file']}::{row['function']}": row for row in data["coverage"]}
    return data


def test_the_stack_runs_every_balancer_the_role_takes(report):
    """STACK_KINDS in molecule/stack/molecule.yml against lb_kind's choices in the lb role's argument spec."""
    specs = yaml.safe_load((REPO / "roles" / "lb" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    assert report["kinds"] == specs["argument_specs"]["main"]["options"]["lb_kind"]["choices"]


def test_the_stack_is_a_balancer_pair_behind_a_floating_address():
    """test_pair.py skips with one lb host: the stack must have two, and lb_vip, for its tests to run."""
    scenario = yaml.safe_load((REPO / "molecule" / "stack" / "molecule.yml").read_text(encoding="utf-8"))
    balancers = [platform["name"] for platform in scenario["platforms"] if "lb" in platform["groups"]]
    assert len(balancers) == 2, balancers
    settings = yaml.safe_load((REPO / "molecule" / "stack" / "group_vars" / "lb.yml").read_text(encoding="utf-8"))
    assert settings["lb_vip"], settings


@pytest.mark.parametrize("what", sorted(PER_KIND))
def test_each_balancer_runs_its_own(report, what):
    row = report["rows"][PER_KIND[what]]
    assert all(row[kind] >= 1 for kind in report["kinds"]), row
    assert row["once"] == 0, row


@pytest.mark.parametrize("test", ONCE)
def test_a_kind_independent_test_runs_once(report, test):
    row = report["rows"][test]
    assert row["once"] >= 1 and not any(row[kind] for kind in report["kinds"]), row


def test_each_failure_path_runs_once_and_each_balancer_takes_one(report):
    rows = [report["rows"][test] for test in FAILURE_PATHS.values()]
    assert all(row["once"] == 1 and not any(row[kind] for kind in report["kinds"]) for row in rows), rows
    parts = [row["part"] or report["kinds"][-1] for row in rows]
    assert sorted(parts) == sorted(report["kinds"]), parts


def test_the_lb_roles_second_run_runs_once_and_each_kind_has_an_idempotence_phase(report):
    """In the stack with the first balancer; per kind, each lb_<kind> scenario's idempotence phase."""
    row = report["rows"]["test_security.py::test_the_balancer_converges_again_verbosely_and_changes_nothing"]
    assert row["once"] == 1 and row["part"] == report["kinds"][0], row
    for kind in report["kinds"]:
        scenario = yaml.safe_load((REPO / "molecule" / f"lb_{kind}" / "molecule.yml").read_text(encoding="utf-8"))
        assert "idempotence" in scenario["scenario"]["test_sequence"], kind


def test_every_test_function_is_collected(report):
    assert len(report["rows"]) == sum(count["functions"] for count in report["census"].values())


def test_the_tests_run_balancer_by_balancer_then_once(report):
    """One switch per balancer: the run never goes back to a balancer it left."""
    order = report["order"]
    folded = [kind for index, kind in enumerate(order) if index == 0 or order[index - 1] != kind]
    assert folded == [*report["kinds"], "once"], folded


def test_a_test_kept_for_one_balancer_runs_after_the_stack_switched_to_it(report):
    """A once_with_balancer(n) test that does not take the `balancer` fixture runs with whichever balancer is
    live: it must come after a per-kind test of its balancer (whose fixture made the switch), not before it,
    in the previous balancer's stack. The stack starts with the first balancer, which needs no switch."""
    switched_to, too_early = {report["kinds"][0]}, []
    for run in report["runs"]:
        if run["kind"] != "once":
            switched_to.add(run["kind"])
        elif run["part"] != "once" and run["part"] not in switched_to:
            too_early.append(f"{run['test']} (with {run['part']})")
    assert not too_early, too_early
