"""Specification of the backend-list filters: ``app_backends``, ``instance_capacities``, ``weighted_backends``."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

import upstream_weights as uw

REPO_ROOT = Path(__file__).resolve().parents[2]

FILTERS = uw.FilterModule().filters()


def app_backends(hostvars: dict[str, dict[str, Any]], hosts: list[str] | None = None) -> list[dict[str, Any]]:
    return FILTERS["app_backends"](hostvars, list(hostvars) if hosts is None else hosts)


def facts(address: str, vcpus: int) -> dict[str, Any]:
    return {"ansible_facts": {"default_ipv4": {"address": address}, "processor_vcpus": vcpus}}


# ---- shape and order -----------------------------------------------------------------------------


def test_each_instance_is_a_backend_in_inventory_order_then_port_order() -> None:
    hostvars = {
        "web2": {"ansible_host": "10.0.0.2", "app_instance_ports": [8001, 8000]},
        "web1": {"ansible_host": "10.0.0.1", "app_instance_ports": [9000]},
    }
    assert app_backends(hostvars, ["web2", "web1"]) == [
        {"name": "web2_8000", "host": "web2", "address": "10.0.0.2", "port": 8000, "capacity": 1.0},
        {"name": "web2_8001", "host": "web2", "address": "10.0.0.2", "port": 8001, "capacity": 1.0},
        {"name": "web1_9000", "host": "web1", "address": "10.0.0.1", "port": 9000, "capacity": 1.0},
    ]


def test_ports_default_to_8000_and_8001() -> None:
    backends = app_backends({"web1": {"ansible_host": "10.0.0.1"}})
    assert [backend["port"] for backend in backends] == [8000, 8001]


def test_only_hosts_of_the_app_group_are_listed() -> None:
    hostvars = {"web1": {"ansible_host": "10.0.0.1"}, "db1": {"ansible_host": "10.0.0.9"}}
    assert {backend["host"] for backend in app_backends(hostvars, ["web1"])} == {"web1"}


def test_names_are_safe_for_haproxy_and_apache() -> None:
    backends = app_backends({"app-1.lab.example": {"app_instance_ports": [8000]}})
    assert backends[0]["name"] == "app-1_lab_example_8000"


def test_hosts_whose_names_collide_once_made_safe_are_rejected() -> None:
    with pytest.raises(
        AnsibleFilterError, match=re.escape("'app.1' and 'app_1' both make the backend name 'app_1_8000'")
    ):
        app_backends({"app.1": {"app_address": "10.0.0.1"}, "app_1": {"app_address": "10.0.0.2"}})


# ---- address precedence --------------------------------------------------------------------------


def test_app_address_wins_over_facts_and_ansible_host() -> None:
    host = {"app_address": "192.168.5.5", "ansible_host": "10.0.0.1", **facts("172.16.0.1", 4)}
    assert app_backends({"web1": host})[0]["address"] == "192.168.5.5"


def test_the_default_ipv4_fact_wins_over_ansible_host() -> None:
    host = {"ansible_host": "10.0.0.1", **facts("172.16.0.1", 4)}
    assert app_backends({"web1": host})[0]["address"] == "172.16.0.1"


def test_an_injected_fact_variable_counts_as_a_fact() -> None:
    host = {"ansible_host": "10.0.0.1", "ansible_default_ipv4": {"address": "172.16.0.7"}}
    assert app_backends({"web1": host})[0]["address"] == "172.16.0.7"


def test_ansible_host_is_used_without_facts() -> None:
    assert app_backends({"web1": {"ansible_host": "10.0.0.1"}})[0]["address"] == "10.0.0.1"


def test_the_inventory_hostname_is_the_last_resort() -> None:
    assert app_backends({"web1.lab": {}})[0]["address"] == "web1.lab"


@pytest.mark.parametrize("address", ["", "  ", 42, ["10.0.0.1"]])
def test_an_unusable_app_address_is_rejected(address: object) -> None:
    with pytest.raises(AnsibleFilterError, match="'web1': app_address must be"):
        app_backends({"web1": {"app_address": address}})


# ---- capacity ------------------------------------------------------------------------------------


def test_app_capacity_is_split_evenly_across_instances() -> None:
    host = {"app_capacity": 6, "app_instance_ports": [8000, 8001, 8002], **facts("10.0.0.1", 16)}
    assert [backend["capacity"] for backend in app_backends({"web1": host})] == [2.0, 2.0, 2.0]


def test_vcpus_are_the_capacity_when_app_capacity_is_not_set() -> None:
    assert [backend["capacity"] for backend in app_backends({"web1": facts("10.0.0.1", 4)})] == [2.0, 2.0]


def test_without_facts_or_app_capacity_each_instance_has_capacity_1() -> None:
    host = {"ansible_host": "10.0.0.1", "app_instance_ports": [8000, 8001, 8002]}
    assert [backend["capacity"] for backend in app_backends({"web1": host})] == [1.0, 1.0, 1.0]


def test_app_capacity_0_drains_the_host() -> None:
    hostvars = {"web1": {"app_address": "10.0.0.1", "app_capacity": 0}, "web2": {"app_address": "10.0.0.2"}}
    weighted = FILTERS["weighted_backends"](app_backends(hostvars), "nginx")
    assert [(backend["name"], backend["weight"], backend["drained"]) for backend in weighted] == [
        ("web1_8000", 0, True),
        ("web1_8001", 0, True),
        ("web2_8000", 1, False),
        ("web2_8001", 1, False),
    ]


@pytest.mark.parametrize("capacity", ["4", -1, float("nan"), float("inf"), True])
def test_an_invalid_app_capacity_is_rejected_naming_host_and_value(capacity: object) -> None:
    with pytest.raises(AnsibleFilterError, match="'web1': app_capacity must be a finite number >= 0") as raised:
        app_backends({"web1": {"app_capacity": capacity}})
    assert repr(capacity) in str(raised.value)


# ---- validation ----------------------------------------------------------------------------------


def test_an_empty_app_group_is_rejected_with_the_fix() -> None:
    with pytest.raises(AnsibleFilterError, match=r"app group is empty: add .* under \[app\]"):
        app_backends({}, [])


def test_a_host_without_ports_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="'web1': app_instance_ports is empty"):
        app_backends({"web1": {"app_instance_ports": []}})


@pytest.mark.parametrize("port", [0, 65536, "8000", 8000.0, True, None])
def test_a_port_that_is_not_an_integer_in_1_to_65535_is_rejected(port: object) -> None:
    with pytest.raises(AnsibleFilterError, match="'web1': app_instance_ports has") as raised:
        app_backends({"web1": {"app_instance_ports": [8000, port]}})
    assert "between 1 and 65535" in str(raised.value)


def test_ports_given_as_a_string_are_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="must be a list of ports"):
        app_backends({"web1": {"app_instance_ports": "8000"}})


def test_a_port_listed_twice_on_one_host_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="'web1': app_instance_ports lists port 8000 more than once"):
        app_backends({"web1": {"app_instance_ports": [8000, 8001, 8000]}})


def test_two_hosts_on_the_same_address_and_port_are_rejected_naming_both_and_the_fix() -> None:
    hostvars = {
        "web1": {"ansible_host": "10.0.0.1", "app_instance_ports": [8000, 8001]},
        "web2": {"app_address": "10.0.0.1", "app_instance_ports": [8001]},
    }
    with pytest.raises(AnsibleFilterError) as raised:
        app_backends(hostvars)
    message = str(raised.value)
    assert "'web1' and 'web2' both put an instance on 10.0.0.1:8001" in message
    assert "ansible_host and app_address" in message
    assert "set app_address" in message


def test_a_host_missing_from_hostvars_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="'ghost' is in the app group but has no hostvars"):
        app_backends({"web1": {}}, ["web1", "ghost"])


def test_a_single_host_name_instead_of_the_group_list_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="list of app hosts"):
        FILTERS["app_backends"]({"web1": {}}, "web1")


def test_the_hostvars_are_not_changed() -> None:
    hostvars = {"web1": {"app_instance_ports": [8001, 8000], **facts("10.0.0.1", 2)}}
    before = copy.deepcopy(hostvars)
    app_backends(hostvars)
    assert hostvars == before


# ---- instance_capacities and weighted_backends ----------------------------------------------------


def test_instance_capacities_maps_each_backend_name_to_its_capacity() -> None:
    hostvars = {"web1": {"app_address": "10.0.0.1", "app_capacity": 8}, "web2": {"app_address": "10.0.0.2"}}
    assert FILTERS["instance_capacities"](app_backends(hostvars)) == {
        "web1_8000": 4.0,
        "web1_8001": 4.0,
        "web2_8000": 1.0,
        "web2_8001": 1.0,
    }


def test_instance_capacities_rejects_a_duplicate_name() -> None:
    backends = [{"name": "a", "capacity": 1}, {"name": "a", "capacity": 2}]
    with pytest.raises(AnsibleFilterError, match="'a' appears more than once"):
        FILTERS["instance_capacities"](backends)


def test_weighted_backends_keeps_every_field_and_adds_the_weight() -> None:
    hostvars = {"web1": {**facts("10.0.0.1", 8)}, "web2": {**facts("10.0.0.2", 2)}}
    weighted = FILTERS["weighted_backends"](app_backends(hostvars), "haproxy")
    assert weighted[0] == {
        "name": "web1_8000",
        "host": "web1",
        "address": "10.0.0.1",
        "port": 8000,
        "capacity": 4.0,
        "weight": 4,
        "drained": False,
    }
    assert [backend["weight"] for backend in weighted] == [4, 4, 1, 1]


def two_hosts_weighted(balancer: str, drained: list[str] | None) -> list[dict[str, Any]]:
    hostvars = {"web1": {**facts("10.0.0.1", 8)}, "web2": {**facts("10.0.0.2", 2)}}
    return FILTERS["weighted_backends"](app_backends(hostvars), balancer, drained)


def test_named_backends_are_drained_and_keep_their_weight() -> None:
    weighted = two_hosts_weighted("haproxy", ["web1_8001"])
    assert [(backend["name"], backend["weight"], backend["drained"]) for backend in weighted] == [
        ("web1_8000", 4, False),
        ("web1_8001", 4, True),
        ("web2_8000", 1, False),
        ("web2_8001", 1, False),
    ]


def test_draining_a_backend_changes_no_other_weight() -> None:
    undrained = two_hosts_weighted("nginx", [])
    drained = two_hosts_weighted("nginx", ["web1_8000", "web2_8001"])
    assert [backend["weight"] for backend in drained] == [backend["weight"] for backend in undrained]


def test_draining_an_unknown_backend_is_rejected_listing_the_backends() -> None:
    expected = "cannot drain web1:8000: no such backend; the backends are web1_8000, web1_8001, web2_8000, web2_8001"
    with pytest.raises(AnsibleFilterError, match=re.escape(expected)):
        two_hosts_weighted("nginx", ["web1:8000"])


def test_draining_every_backend_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="would leave no backend taking traffic"):
        two_hosts_weighted("nginx", ["web1_8000", "web1_8001", "web2_8000", "web2_8001"])


def test_draining_every_backend_with_capacity_is_rejected() -> None:
    hostvars = {"web1": {"app_address": "10.0.0.1", "app_capacity": 0}, "web2": {"app_address": "10.0.0.2"}}
    with pytest.raises(AnsibleFilterError, match="would leave no backend taking traffic"):
        FILTERS["weighted_backends"](app_backends(hostvars), "apache", ["web2_8000", "web2_8001"])


@pytest.mark.parametrize("drained", ["web1_8000", {"web1_8000": True}, [["web1_8000"]], 8000])
def test_drained_backends_that_are_not_a_list_of_names_are_rejected(drained: object) -> None:
    with pytest.raises(AnsibleFilterError, match="drained must be a list of backend names"):
        two_hosts_weighted("nginx", drained)  # type: ignore[arg-type]


hosts_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=32),  # vCPUs, 0 meaning no facts
        st.lists(st.integers(min_value=1, max_value=65535), min_size=1, max_size=4, unique=True),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(hosts_strategy)
def test_a_host_capacity_is_split_evenly_and_totals_are_kept(hosts: list[tuple[int, list[int]]]) -> None:
    hostvars = {
        f"web{index}": {
            "app_address": f"10.0.0.{index}",
            "app_instance_ports": ports,
            **(facts("10.1.0.1", vcpus) if vcpus else {}),
        }
        for index, (vcpus, ports) in enumerate(hosts)
    }
    backends = app_backends(hostvars)
    assert len(backends) == sum(len(ports) for _, ports in hosts)
    for index, (vcpus, ports) in enumerate(hosts):
        mine = [backend for backend in backends if backend["host"] == f"web{index}"]
        assert [backend["port"] for backend in mine] == sorted(ports)
        expected_total = vcpus if vcpus else len(ports)
        assert sum(backend["capacity"] for backend in mine) == pytest.approx(expected_total)


# ---- through Ansible, as the roles use them --------------------------------------------------------


def test_the_filters_work_on_real_hostvars_in_a_play(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        textwrap.dedent(
            """\
            all:
              children:
                app:
                  hosts:
                    web1: {ansible_host: 10.0.0.1, app_capacity: 6, app_instance_ports: [8000, 8001, 8002]}
                    web2: {ansible_host: 10.0.0.2, app_capacity: "{{ 2 * 4 }}", app_instance_ports: [8000]}
                    web3: {ansible_host: 10.0.0.3, app_capacity: 0}
                db:
                  hosts:
                    db1: {ansible_host: 10.0.0.9}
            """
        )
    )
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - hosts: localhost
              gather_facts: false
              tasks:
                - ansible.builtin.copy:
                    dest: "{{ out }}"
                    content: >-
                      {{ hostvars | app_backends(groups['app'])
                         | weighted_backends('haproxy', ['web1_8001']) | to_json }}
            """
        )
    )
    out = tmp_path / "backends.json"
    completed = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), "-e", f"out={out}"],
        cwd=REPO_ROOT,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    backends = json.loads(out.read_text())
    assert [(b["name"], b["address"], b["port"], b["weight"], b["drained"]) for b in backends] == [
        ("web1_8000", "10.0.0.1", 8000, 1, False),
        ("web1_8001", "10.0.0.1", 8001, 1, True),
        ("web1_8002", "10.0.0.1", 8002, 1, False),
        ("web2_8000", "10.0.0.2", 8000, 4, False),
        ("web3_8000", "10.0.0.3", 8000, 0, True),
        ("web3_8001", "10.0.0.3", 8001, 0, True),
    ]


def test_a_filter_error_fails_the_play_with_the_message(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    playbook = tmp_path / "bad.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - hosts: localhost
              gather_facts: false
              tasks:
                - ansible.builtin.debug:
                    msg: "{{ {'web1_8000': 'lots'} | upstream_weights('haproxy') }}"
            """
        )
    )
    completed = subprocess.run(
        ["ansible-playbook", str(playbook)],
        cwd=REPO_ROOT,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert "upstream_weights: capacity of backend 'web1_8000' must be a finite number >= 0, got 'lots'" in (
        completed.stdout + completed.stderr
    )


def test_checkable_backends_give_each_host_name_its_own_loopback_address():
    backends = [
        {"name": "a_8000", "address": "app1", "port": 8000, "capacity": 1},
        {"name": "b_8000", "address": "10.0.0.7", "port": 8000, "capacity": 1},
        {"name": "c_8000", "address": "app3.example.com", "port": 8000, "capacity": 1},
        {"name": "d_8000", "address": "fd00::1", "port": 8000, "capacity": 1},
    ]
    addresses = [backend["address"] for backend in uw.checkable_backends(backends)]
    assert addresses == ["127.0.1.1", "10.0.0.7", "127.0.1.3", "fd00::1"]
    assert backends[0]["address"] == "app1"
