"""The fleet table of make status (roles/rollout/files/fleet_status.py): its cells, from what an instance
said."""

from __future__ import annotations

from pathlib import Path

import pytest

from script_module import load_script

ROLES = Path(__file__).resolve().parents[2] / "roles"
fleet_status = load_script(ROLES / "rollout" / "files" / "fleet_status.py", "fleet_status")


def test_p99_is_a_dash_when_the_instance_served_no_request_in_the_window():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": None}}) == "-"


def test_p99_is_the_figure_the_instance_gives():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": 12.5}}) == "12.5"


def test_p99_is_a_question_mark_when_the_instance_did_not_say():
    assert fleet_status.p99_cell({}) == "?"
    assert fleet_status.p99_cell({"response_time": "n/a"}) == "?"


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
