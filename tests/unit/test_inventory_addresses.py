"""Specification of address_problems: an app host's addresses that are no address, or that the
balancer could never reach."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from inventory_addresses import address_problems, is_host_name

GOOD = {"app_listen_address": "0.0.0.0", "app_db_host": "10.0.0.20", "app_redis_host": "redis1.internal"}
LB_ELSEWHERE = {"lb1": "192.0.2.10"}


def problems(**values) -> list[str]:
    return address_problems("app1", {**GOOD, **values}, LB_ELSEWHERE)


def test_good_addresses_have_no_problem():
    assert problems() == []
    assert problems(app_address="10.0.0.5", app_listen_address="10.0.0.5") == []
    assert problems(app_address="app1.internal", app_listen_address="::") == []


@pytest.mark.parametrize("name", ["app1", "app1.internal", "a-b.example.org.", "db1.lab"])
def test_dns_names_are_names(name):
    assert is_host_name(name)


@pytest.mark.parametrize("name", ["", "http://app1", "app1:8000", "app 1", "-app1", "10.0.0.300", "a..b", "a" * 64])
def test_other_text_is_no_name(name):
    assert not is_host_name(name)


@pytest.mark.parametrize("value", ["http://10.0.0.5", "10.0.0.5:8000", "10.0.0.300", "app 1", 42, ""])
def test_an_app_address_that_is_no_address_names_the_variable_and_the_form(value):
    (problem,) = problems(app_address=value)
    assert problem.startswith(f"app1: app_address must be an IP address or a DNS name, such as 10.0.0.5 or "
                              f"app1.internal, without a scheme, port or path; got {value!r}")


def test_a_wildcard_is_no_address_to_connect_to():
    (problem,) = problems(app_redis_host="0.0.0.0")
    assert "app_redis_host is 0.0.0.0, which means every address when listening and none when connecting" in problem


def test_a_database_host_with_a_port_is_refused():
    (problem,) = problems(app_db_host="db1:5432")
    assert problem.startswith("app1: app_db_host must be an IP address or a DNS name")


def test_a_listen_address_that_is_no_ip_address_is_refused():
    (problem,) = problems(app_listen_address="all")
    assert "app_listen_address must be an IP address the instances listen on, such as 0.0.0.0" in problem


@pytest.mark.parametrize("listen", ["127.0.0.1", "::1", "127.0.1.1"])
def test_loopback_is_refused_when_the_balancer_runs_on_another_host(listen):
    (problem,) = problems(app_listen_address=listen)
    assert f"app_listen_address is {listen}, a loopback address, which the balancer on lb1 cannot reach" in problem
    assert "set it to 0.0.0.0" in problem


def test_loopback_is_fine_when_the_balancer_is_this_host():
    assert address_problems("app1", {**GOOD, "app_listen_address": "127.0.0.1"}, {"app1": None}) == []
    assert address_problems("app1", {**GOOD, "app_listen_address": "127.0.0.1", "ansible_host": "10.0.0.9"},
                            {"lb1": "10.0.0.9"}) == []
    assert address_problems("app1", {**GOOD, "app_listen_address": "127.0.0.1", "ansible_host": "10.0.0.9"},
                            {"lb1": {"ansible_host": "10.0.0.9"}}) == []


def test_a_listen_address_other_than_the_balancers_address_is_refused():
    (problem,) = problems(app_listen_address="10.0.0.6", app_address="10.0.0.5")
    assert "app_listen_address is 10.0.0.6, but app_address, where the balancer connects, is 10.0.0.5" in problem


def test_bad_arguments_are_refused():
    with pytest.raises(AnsibleFilterError, match="address_problems"):
        address_problems("app1", GOOD, ["lb1"])
