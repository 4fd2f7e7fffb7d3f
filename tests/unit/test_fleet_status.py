"""The fleet table of make status (roles/rollout/files/fleet_status.py): its cells, from what an instance
said."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "rollout" / "files" / "fleet_status.py"


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("fleet_status", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fleet_status = load_script()


def test_p99_is_a_dash_when_the_instance_served_no_request_in_the_window():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": None}}) == "-"


def test_p99_is_the_figure_the_instance_gives():
    assert fleet_status.p99_cell({"response_time": {"p99_ms": 12.5}}) == "12.5"


def test_p99_is_a_question_mark_when_the_instance_did_not_say():
    assert fleet_status.p99_cell({}) == "?"
    assert fleet_status.p99_cell({"response_time": "n/a"}) == "?"


# Each balancer's view words the state the same way, its own status beside it.
def load_view(kind: str) -> Any:
    path = Path(__file__).resolve().parents[2] / "roles" / "lb" / "files" / "kinds" / kind / "view.py"
    spec = importlib.util.spec_from_file_location(f"view_{kind}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_haproxy_states_read_as_drained_or_in_rotation():
    view = load_view("haproxy")
    assert view.readable("DRAIN") == "drained (DRAIN)"
    assert view.readable("MAINT") == "drained (MAINT)"
    assert view.readable("UP") == "in rotation (UP)"
    assert view.readable("DOWN") == "DOWN"


def test_apache_flags_read_as_drained_or_in_rotation():
    view = load_view("apache")
    assert view.readable("Init Drn Ok") == "drained (Init Drn Ok)"
    assert view.readable("Init Dis Ok") == "drained (Init Dis Ok)"
    assert view.readable("Init Ok") == "in rotation (Init Ok)"
    assert view.readable("Init Err") == "Init Err"
