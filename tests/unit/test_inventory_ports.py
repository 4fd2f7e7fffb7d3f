"""Specification of port_disagreements: ports that cannot work together, found on the controller."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

import inventory_ports
from inventory_ports import port_disagreements

DEFAULTS = {"app_instance_ports": [8000, 8001], "app_redis_port": 6379, "app_db_port": 5432, "redis_port": 6379,
            "postgresql_port": 5432, "lb_http_port": 80, "lb_https_port": 443, "lb_tls_enabled": True,
            "lb_haproxy_stats_port": 8404, "lb_apache_manager_port": 8081, "lb_kind": "nginx"}
GROUPS = {"lb": ["lb1"], "app": ["app1", "app2"], "redis": ["redis1"], "db": ["db1"]}


def hostvars(**per_host: dict) -> dict:
    return {host: dict(per_host.get(host, {})) for members in GROUPS.values() for host in members}


def test_the_defaults_fit():
    assert port_disagreements(hostvars(), GROUPS, DEFAULTS) == []


def test_a_redis_port_set_on_its_group_only_is_named_per_app_host():
    problems = port_disagreements(hostvars(redis1={"redis_port": 6380}), GROUPS, DEFAULTS)
    assert problems == [
        f"{host}: app_redis_port is 6379, but redis1 (the first host of group redis, which the app uses) sets "
        "redis_port 6380: set both to one port, or leave both unset." for host in ("app1", "app2")]


def test_ports_given_as_strings_compare_as_numbers():
    assert port_disagreements(hostvars(app1={"app_db_port": "5432"}), GROUPS, DEFAULTS) == []


def test_one_host_in_two_groups_may_not_give_one_port_to_both():
    groups = {**GROUPS, "redis": ["app1"]}
    problems = port_disagreements({**hostvars(), "app1": {"redis_port": 8001, "app_redis_port": 8001},
                                   "app2": {"app_redis_port": 8001}}, groups, DEFAULTS)
    assert problems == ["app1: port 8001 is given to app_instance_ports and redis_port: give each its own port."]


@pytest.mark.parametrize(("kind", "admin"), [("haproxy", "lb_haproxy_stats_port"), ("apache", "lb_apache_manager_port")])
def test_the_balancers_admin_port_counts_for_its_kind_only(kind, admin):
    clash = {"lb_kind": kind, "lb_https_port": DEFAULTS[admin]}
    assert port_disagreements(hostvars(lb1=clash), GROUPS, DEFAULTS) == [
        f"lb1: port {DEFAULTS[admin]} is given to {admin} and lb_https_port: give each its own port."]
    assert port_disagreements(hostvars(lb1={"lb_https_port": DEFAULTS[admin]}), GROUPS, DEFAULTS) == []


def test_the_https_port_counts_only_with_tls():
    assert port_disagreements(hostvars(lb1={"lb_https_port": 80, "lb_tls_enabled": False}), GROUPS, DEFAULTS) == []


def test_bad_arguments_are_filter_errors():
    with pytest.raises(AnsibleFilterError):
        port_disagreements(hostvars(), ["lb1"], DEFAULTS)


def test_the_filter_is_registered():
    assert inventory_ports.FilterModule().filters()["port_disagreements"] is port_disagreements
