"""The fleet table of make status (roles/rollout/files/fleet_status.py): its cells, from what an instance
said."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from script_module import load_script

ROLES = Path(__file__).resolve().parents[2] / "roles"
fleet_status = load_script(ROLES / "rollout" / "files" / "fleet_status.py", "fleet_status")


def test_p99_is_a_dash_when_the_instance_served_no_request_in_the_window():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": None}}) == "-"


def test_p99_is_the_figure_the_instance_gives():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": 12.5}}) == "12.5"
    # One decimal for every row, so the column reads at a glance: the app gives 76.989 as it measured it.
    assert fleet_status.p99_cell({"response_time": {"p99_ms": 76.989}}) == "77.0"
    assert fleet_status.p99_cell({"response_time": {"p99_ms": 36}}) == "36.0"


def test_p99_is_a_question_mark_when_the_instance_did_not_say():
    assert fleet_status.p99_cell({}) == "?"
    assert fleet_status.p99_cell({"response_time": "n/a"}) == "?"
    assert fleet_status.p99_cell({"response_time": {"avg_ms": 3.0}}) == "?"


# Each balancer's view words the state the same way, its own status beside it.
@pytest.mark.parametrize(("kind", "status", "state"), [
    ("haproxy", "DRAIN", "drained (DRAIN)"),
    ("haproxy", "MAINT", "drained (MAINT)"),
    ("haproxy", "UP", "in rotation (UP)"),
    ("haproxy", "DOWN", "DOWN"),
    ("apache", "Init Drn Ok", "drained (Init Drn Ok)"),
    ("apache", "Init Dis Ok", "drained (Init Dis Ok)"),
    ("apache", "Init Ok", "in rotation (Init Ok)"),
    ("apache", "Init Err", "Init Err"),
])
def test_each_balancers_status_reads_as_drained_or_in_rotation(kind, status, state):
    view = load_script(ROLES / "lb" / "files" / "kinds" / kind / "view.py", f"view_{kind}")
    assert view.readable(status) == state


# nginx's view is its config file only while that file is what nginx loaded at its last successful reload.
nginx_view = load_script(ROLES / "lb" / "files" / "kinds" / "nginx" / "view.py", "view_nginx")


def test_nginx_config_written_before_its_newest_worker_started_is_what_nginx_serves():
    assert nginx_view.stale_config(1000.0, 1000.5) is None
    assert nginx_view.stale_config(1000.9, 1000.0) is None  # within /proc's start-time slack


def test_nginx_config_written_after_its_newest_worker_started_is_not_taken_for_the_view():
    problem = nginx_view.stale_config(1010.0, 1000.0)
    assert "changed after its last successful reload" in problem and "nginx -t" in problem
    assert nginx_view.stale_config(1000.0, None) == "nginx runs no worker process"


def test_nginx_workers_are_found_as_the_children_of_their_parent():
    # This test's own process is a child of its parent: its start lies between boot and now.
    start = nginx_view.newest_child_start(os.getppid())
    assert start is not None and start <= time.time()
    assert nginx_view.newest_child_start(2 ** 22 + 1) is None


def test_the_table_says_whose_view_it_is_and_who_holds_the_floating_address():
    single = {"kind": "nginx", "host": "lb1", "vip": "", "holds_vip": False, "backends": {}, "error": ""}
    assert fleet_status.balancer_line(single) == "balancer lb1 (nginx)"
    assert fleet_status.balancer_line({**single, "vip": "10.0.0.250", "holds_vip": True}) == (
        "balancer lb1 (nginx): holds the floating address 10.0.0.250")
    # set_fact may hand the boolean over as its text.
    assert fleet_status.balancer_line({**single, "host": "lb2", "vip": "10.0.0.250", "holds_vip": "False"}) == (
        "balancer lb2 (nginx): standby for the floating address 10.0.0.250")
