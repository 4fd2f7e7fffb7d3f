"""Specification of the ``upstream_weights`` filter: capacities in, balancer weights out."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import upstream_weights as uw

import balancers as kinds

BALANCERS = list(kinds.kinds())
MAX_WEIGHT = {kind: kinds.max_weight(kind) for kind in BALANCERS}

FILTERS = uw.FilterModule().filters()

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
capacities_values = st.one_of(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
capacity_maps = st.dictionaries(names, capacities_values, min_size=1, max_size=20).filter(
    lambda capacities: any(value > 0 for value in capacities.values())
)
balancers = st.sampled_from(BALANCERS)


# ---- examples ------------------------------------------------------------------------------------


@pytest.mark.parametrize("balancer", BALANCERS)
def test_small_integer_ratios_stay_exact(balancer: str) -> None:
    assert uw.upstream_weights({"a": 1, "b": 2, "c": 4}, balancer) == {"a": 1, "b": 2, "c": 4}


@pytest.mark.parametrize("balancer", BALANCERS)
def test_fractional_capacities_in_a_small_ratio_stay_exact(balancer: str) -> None:
    # 4 vCPUs over 3 instances next to 2 vCPUs over 2 instances: 4/3 : 1 is 4 : 3.
    assert uw.upstream_weights({"a": 4 / 3, "b": 1.0, "c": 0.5}, balancer) == {"a": 8, "b": 6, "c": 3}


@pytest.mark.parametrize("balancer", BALANCERS)
def test_equal_capacities_give_equal_weights(balancer: str) -> None:
    assert uw.upstream_weights({"a": 2.5, "b": 2.5, "c": 2.5}, balancer) == {"a": 1, "b": 1, "c": 1}


def test_a_ratio_too_large_for_the_range_is_scaled_so_the_largest_gets_the_maximum() -> None:
    weights = uw.upstream_weights({"big": 1000, "mid": 300, "small": 7}, "haproxy")
    # 300 * 256 / 1000 = 76.8 and 7 * 256 / 1000 = 1.792
    assert weights == {"big": 256, "mid": 77, "small": 2}


def test_nginx_and_apache_scale_to_100() -> None:
    capacities = {"big": 1000, "mid": 300, "small": 7}
    assert uw.upstream_weights(capacities, "nginx") == {"big": 100, "mid": 30, "small": 1}
    assert uw.upstream_weights(capacities, "apache") == {"big": 100, "mid": 30, "small": 1}


def test_a_tiny_positive_capacity_still_gets_weight_1() -> None:
    assert uw.upstream_weights({"big": 1e6, "tiny": 1e-6}, "haproxy") == {"big": 256, "tiny": 1}


def test_capacity_0_gives_weight_0_meaning_drained() -> None:
    assert uw.upstream_weights({"a": 0, "b": 3, "c": 0.0}, "nginx") == {"a": 0, "b": 1, "c": 0}


def test_the_result_keeps_the_input_order() -> None:
    capacities = {"zeta": 1, "alpha": 2, "mid": 3}
    assert list(uw.upstream_weights(capacities, "apache")) == ["zeta", "alpha", "mid"]


def test_weights_are_plain_ints() -> None:
    weights = uw.upstream_weights({"a": 0.3, "b": 7.1, "c": 0}, "haproxy")
    assert all(type(weight) is int for weight in weights.values())


# ---- errors, through the filter as Jinja calls it ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("4", "'4'"),
        (None, "None"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (True, "True"),
        (False, "False"),
        (-1, "-1"),
        (-0.5, "-0.5"),
        ([1], "[1]"),
    ],
)
def test_a_capacity_that_is_not_a_finite_number_at_least_0_is_rejected_naming_backend_and_value(
    value: object, shown: str
) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        FILTERS["upstream_weights"]({"web1_8000": 1, "web2_8000": value}, "haproxy")
    assert "web2_8000" in str(raised.value)
    assert shown in str(raised.value)


def test_an_empty_mapping_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="empty"):
        FILTERS["upstream_weights"]({}, "nginx")


def test_all_capacities_0_is_rejected_because_nothing_would_get_traffic() -> None:
    with pytest.raises(AnsibleFilterError, match="none would get traffic") as raised:
        FILTERS["upstream_weights"]({"a": 0, "b": 0.0}, "nginx")
    assert "a, b" in str(raised.value)


@pytest.mark.parametrize("balancer", ["traefik", "HAProxy", "", None])
def test_an_unknown_balancer_is_rejected_naming_the_three_choices(balancer: object) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        FILTERS["upstream_weights"]({"a": 1}, balancer)
    assert "apache, haproxy, nginx" in str(raised.value)
    assert repr(balancer) in str(raised.value)


def test_a_list_instead_of_a_mapping_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="mapping"):
        FILTERS["upstream_weights"]([1, 2], "nginx")


# ---- properties ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
def test_weights_are_in_the_balancer_range(capacities: dict[str, float], balancer: str) -> None:
    weights = uw.upstream_weights(capacities, balancer)
    assert set(weights) == set(capacities)
    for name, weight in weights.items():
        if capacities[name] == 0:
            assert weight == 0
        else:
            assert 1 <= weight <= MAX_WEIGHT[balancer]


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
def test_larger_capacity_never_gets_a_smaller_weight(capacities: dict[str, float], balancer: str) -> None:
    weights = uw.upstream_weights(capacities, balancer)
    for a, capacity_a in capacities.items():
        for b, capacity_b in capacities.items():
            if capacity_a < capacity_b:
                assert weights[a] <= weights[b]
            if capacity_a == capacity_b:
                assert weights[a] == weights[b]


@PROPERTY_SETTINGS
@given(st.lists(names, min_size=2, max_size=10, unique=True), capacities_values.filter(lambda v: v > 0), balancers)
def test_equal_capacities_give_equal_weights_whatever_the_value(
    backend_names: list[str], capacity: float, balancer: str
) -> None:
    weights = uw.upstream_weights(dict.fromkeys(backend_names, capacity), balancer)
    assert len(set(weights.values())) == 1


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
@example({"a": 1, "b": 3}, "haproxy")
@example({"a": 1000, "b": 999, "c": 1}, "nginx")
def test_weights_are_proportional_to_capacity_within_rounding(capacities: dict[str, float], balancer: str) -> None:
    """Each weight is within 0.5 of capacity * scale, except a tiny capacity raised to 1.

    The scale is the one the result itself uses: largest weight / largest capacity.
    """
    weights = uw.upstream_weights(capacities, balancer)
    largest = max(capacities, key=lambda name: capacities[name])
    scale = Fraction(weights[largest]) / Fraction(capacities[largest])
    for name, capacity in capacities.items():
        ideal = Fraction(capacity) * scale
        if weights[name] == 1 and ideal < 1:
            continue
        assert abs(weights[name] - ideal) <= Fraction(1, 2), (name, capacity, weights[name], float(ideal))


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
def test_the_range_is_used_unless_the_ratio_is_exact(capacities: dict[str, float], balancer: str) -> None:
    """Rounding error stays small: either the weights are the exact ratio or the largest is the max."""
    weights = uw.upstream_weights(capacities, balancer)
    largest = max(capacities, key=lambda name: capacities[name])
    if weights[largest] != MAX_WEIGHT[balancer]:
        for name, capacity in capacities.items():
            assert math.isclose(weights[name] * capacities[largest], capacity * weights[largest], rel_tol=1e-6)


@PROPERTY_SETTINGS
@given(
    st.dictionaries(names, st.integers(min_value=0, max_value=12), min_size=1, max_size=8).filter(
        lambda capacities: any(capacities.values())
    ),
    balancers,
    st.sampled_from([1, 0.5, 0.25, 2, 3, 1 / 3, 10]),
)
def test_small_integer_ratios_are_exact_at_any_scale(capacities: dict[str, int], balancer: str, unit: float) -> None:
    weights = uw.upstream_weights({name: value * unit for name, value in capacities.items()}, balancer)
    divisor = math.gcd(*capacities.values())
    assert weights == {name: value // divisor for name, value in capacities.items()}


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
def test_every_positive_capacity_gets_at_least_1_and_only_0_gets_0(capacities: dict[str, float], balancer: str) -> None:
    weights = uw.upstream_weights(capacities, balancer)
    assert {name for name, weight in weights.items() if weight == 0} == {
        name for name, capacity in capacities.items() if capacity == 0
    }


@PROPERTY_SETTINGS
@given(capacity_maps, balancers)
def test_the_result_is_deterministic_and_the_input_unchanged(capacities: dict[str, float], balancer: str) -> None:
    before = copy.deepcopy(capacities)
    first = uw.upstream_weights(capacities, balancer)
    assert capacities == before
    assert list(capacities) == list(before)
    assert uw.upstream_weights(dict(reversed(list(capacities.items()))), balancer) == first


@PROPERTY_SETTINGS
@given(
    st.dictionaries(names, st.integers(min_value=0, max_value=10_000), min_size=1, max_size=20).filter(
        lambda capacities: any(capacities.values())
    ),
    balancers,
    st.integers(min_value=2, max_value=1000),
)
def test_multiplying_every_capacity_by_the_same_factor_changes_no_weight(
    capacities: dict[str, int], balancer: str, factor: int
) -> None:
    scaled = {name: value * factor for name, value in capacities.items()}
    assert uw.upstream_weights(scaled, balancer) == uw.upstream_weights(capacities, balancer)


def test_the_three_first_balancers_keep_their_weight_ranges() -> None:
    """HAProxy accepts 0-256 and Apache's loadfactor 1-100; nginx has no upper limit, 100 is our choice
    (roles/lb/vars/kinds/<kind>.yml, weight_max)."""
    assert {kind: MAX_WEIGHT[kind] for kind in ("nginx", "haproxy", "apache")} == {"nginx": 100, "haproxy": 256, "apache": 100}


# --- The private address (common_private_interface) -------------------------------------------------------

TWO_NETWORKS = {
    "ansible_facts": {
        "interfaces": ["lo", "eth0", "eth1", "bond-priv"],
        "default_ipv4": {"address": "203.0.113.10", "interface": "eth0"},
        "eth0": {"ipv4": {"address": "203.0.113.10"}},
        "eth1": {"ipv4": {"address": "10.20.0.11"}},
        "bond_priv": {"ipv4": {"address": "10.30.0.11"}},
        "lo": {"ipv4": {"address": "127.0.0.1"}},
    }
}


def test_the_private_interface_chooses_the_backend_address_over_the_default_one():
    host_vars = {**TWO_NETWORKS, "common_private_interface": "eth1"}
    assert uw.backend_address("app1", host_vars) == ("10.20.0.11", "common_private_interface")
    assert uw.backend_address("app1", TWO_NETWORKS) == ("203.0.113.10", "ansible_default_ipv4")
    assert FILTERS["private_address"](host_vars, "app1") == "10.20.0.11"


def test_an_interface_named_with_a_dash_is_read_from_its_fact_name():
    host_vars = {**TWO_NETWORKS, "common_private_interface": "bond-priv"}
    assert uw.find_private_address(host_vars, "app1") == ("10.30.0.11", "common_private_interface")


def test_app_address_still_wins_over_the_private_interface():
    host_vars = {**TWO_NETWORKS, "common_private_interface": "eth1", "app_address": "10.99.0.1"}
    assert uw.backend_address("app1", host_vars) == ("10.99.0.1", "app_address")


def test_without_facts_the_private_address_is_unknown_and_the_backend_falls_back_to_ansible_host():
    host_vars = {"common_private_interface": "eth1", "ansible_host": "app1.example"}
    assert FILTERS["private_address"](host_vars, "app1") == ""
    assert uw.backend_address("app1", host_vars) == ("app1.example", "ansible_host")


@pytest.mark.parametrize("interface, expected", [
    ("eth7", "it has no interface eth7 (its interfaces: bond-priv, eth0, eth1, lo)"),
    ("lo0; rm", "common_private_interface must be an interface name such as eth1"),
    (["eth1"], "common_private_interface must be an interface name such as eth1"),
])
def test_a_wrong_private_interface_is_an_error_naming_the_variable(interface, expected):
    with pytest.raises(AnsibleFilterError, match=expected.replace("(", r"\(").replace(")", r"\)")) as raised:
        FILTERS["private_address"]({**TWO_NETWORKS, "common_private_interface": interface}, "app1")
    assert "app1" in str(raised.value)


def test_an_interface_without_an_ipv4_address_is_an_error():
    facts = {**TWO_NETWORKS["ansible_facts"], "eth1": {"ipv6": [{"address": "fd00::11"}]}}
    with pytest.raises(AnsibleFilterError, match="common_private_interface is eth1, but eth1 has no IPv4 address"):
        FILTERS["private_address"]({"ansible_facts": facts, "common_private_interface": "eth1"}, "app1")


def test_private_addresses_lists_each_hosts_and_names_one_without_facts():
    hostvars = {"lb1": {**TWO_NETWORKS, "common_private_interface": "eth1"}, "mon1": TWO_NETWORKS, "new1": {}}
    assert FILTERS["private_addresses"](hostvars, ["lb1", "mon1"]) == ["10.20.0.11", "203.0.113.10"]
    with pytest.raises(AnsibleFilterError, match="host 'new1' has no gathered network facts"):
        FILTERS["private_addresses"](hostvars, ["lb1", "new1"])


def test_instance_names_are_each_hosts_ports_as_the_instances_name_themselves():
    hostvars = {"app1": {"app_instance_ports": [8001, 8000]}, "app2": {}, "app3": {"app_instance_ports": [9000]}}
    assert FILTERS["instance_names"](hostvars, ["app1", "app2", "app3"]) == [
        "app1:8000", "app1:8001", "app2:8000", "app2:8001", "app3:9000"]
    with pytest.raises(AnsibleFilterError, match="host 'app4' is in the app group but has no hostvars"):
        FILTERS["instance_names"](hostvars, ["app4"])
