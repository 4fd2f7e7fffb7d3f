"""Specification of version_drift: the message that stops a converge from moving the fleet's version."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

import fleet_versions
from fleet_versions import version_drift

WANTED = {"app1": "1.0.0", "app2": "1.0.0"}


def test_a_fleet_on_the_inventorys_version_has_no_drift():
    assert version_drift({"app1": {"8000": "1.0.0", "8001": "1.0.0"}, "app2": {8000: "1.0.0"}}, WANTED) == ""


def test_hosts_with_no_release_yet_have_no_drift():
    """A first converge: nothing runs, no `current` yet."""
    assert version_drift({"app1": {"8000": "", "8001": None}, "app2": {}}, WANTED) == ""


def test_a_fleet_on_another_version_names_both_versions_and_both_ways_out():
    message = version_drift({"app1": {"8000": "1.1.0", "8001": "1.1.0"}, "app2": {"8000": "1.1.0"}}, WANTED)
    assert message.startswith("The fleet runs 1.1.0, and the inventory's app_version is 1.0.0:")
    assert "would move app1:8000, app1:8001, app2:8000 to 1.0.0" in message
    assert "stopped before any host changed" in message
    assert 'set app_version: "1.1.0" in the inventory (or -e app_version=1.1.0)' in message
    assert "make deploy VERSION=1.0.0, or site.yml -e app_converge_version=true" in message


def test_a_mixed_fleet_lists_which_instances_run_which_version():
    message = version_drift({"app1": {"8001": "1.1.0", "8000": "1.1.0"}, "app2": {"8000": "1.0.0", "8001": "1.0.0"}},
                            WANTED)
    assert "more than one version" in message
    assert "1.1.0 on app1:8000, app1:8001; 1.0.0 on app2:8000, app2:8001" in message
    assert "would move app1:8000, app1:8001 to 1.0.0" in message
    assert "make deploy VERSION=<that version>" in message


def test_ports_sort_as_numbers():
    message = version_drift({"app1": {"10000": "2.0", "9000": "2.0"}}, {"app1": "1.0"})
    assert "app1:9000, app1:10000" in message


def test_one_instance_left_behind_is_drift_too():
    """A host whose `current` moved, but one instance still runs the old release."""
    message = version_drift({"app1": {"8000": "1.0.0", "8001": "0.9.0"}}, {"app1": "1.0.0"})
    assert "0.9.0 on app1:8001" in message
    assert "would move app1:8001 to 1.0.0" in message


def test_hosts_with_their_own_app_version_are_each_compared_with_theirs():
    running = {"app1": {"8000": "1.0.0"}, "app2": {"8000": "2.0.0"}}
    assert version_drift(running, {"app1": "1.0.0", "app2": "2.0.0"}) == ""
    message = version_drift(running, {"app1": "1.0.0", "app2": "1.0.0"})
    assert "would move app2:8000 to 1.0.0" in message
    message = version_drift({"app1": {"8000": "3.0"}, "app2": {"8000": "3.0"}}, {"app1": "1.0.0", "app2": "2.0.0"})
    assert "app_version is 1.0.0 on app1, 2.0.0 on app2" in message
    assert "site.yml -e app_converge_version=true." in message


@pytest.mark.parametrize("running, wanted", [([], {}), ({"app1": {"8000": "1"}}, []), ({"app1": ["1.0"]}, {})])
def test_wrong_shapes_are_filter_errors(running, wanted):
    with pytest.raises(AnsibleFilterError):
        version_drift(running, wanted)


def test_the_filter_is_registered():
    assert fleet_versions.FilterModule().filters()["version_drift"] is version_drift


def test_with_the_switch_it_says_what_rolls_instead():
    message = version_drift({"app1": {"8000": "1.1.0"}, "app2": {"8000": "1.0.0"}}, WANTED, True)
    assert "app_converge_version is true: app1:8000 roll to it, batch by batch behind the balancer." in message
    assert "stopped before" not in message
    assert version_drift({"app1": {"8000": "1.0.0"}}, WANTED, True) == ""
