"""Specification of the balancer pair's checks: settings from the inventory, then the VIP against the
addresses the hosts have (roles/lb/files/addresses.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from lb_vip import ip_networks, vip_network_problems, vip_settings_problems, vrrp_addresses
from script_module import load_script

PAIR = {"lb_kind": "haproxy", "lb_vip": "10.89.160.250", "lb_vip_prefix": 24, "lb_vrrp_router_id": 51}


def inventory(**per_host):
    """lb1 and lb2 with PAIR, each overridden by per_host[name]; app1 at 10.89.160.13."""
    hostvars = {name: {**PAIR, **per_host.get(name, {})} for name in ("lb1", "lb2")}
    hostvars["app1"] = {"ansible_host": "10.89.160.13"}
    return hostvars


def test_a_good_pair_and_a_single_balancer_have_no_problem():
    assert vip_settings_problems(inventory(), ["lb1", "lb2"]) == []
    assert vip_settings_problems({"lb1": {"lb_kind": "apache"}}, ["lb1"]) == []
    # No VIP on any lb host: nothing else of the pair is looked at.
    assert vip_settings_problems({"lb1": {"lb_vrrp_router_id": 999}, "lb2": {}}, ["lb1", "lb2"]) == []


def test_two_balancer_kinds_are_refused_naming_the_hosts():
    problems = vip_settings_problems(inventory(lb2={"lb_kind": "apache"}), ["lb1", "lb2"])
    assert problems == ["lb_kind differs between the lb hosts (lb1: 'haproxy'; lb2: 'apache'): the floating "
                        "address moves between them, and each must serve the same way, so set lb_kind once for the "
                        "group lb (group_vars/lb.yml), not per host."]
    # Even without a VIP: the rolling deploy drives every lb host the same way.
    assert len(vip_settings_problems({"lb1": {}, "lb2": {"lb_kind": "apache"}}, ["lb1", "lb2"])) == 1


@pytest.mark.parametrize("router_id", [0, 256, -1, "51", True, 51.0])
def test_a_router_id_outside_1_to_255_is_refused(router_id):
    problems = vip_settings_problems(inventory(lb1={"lb_vrrp_router_id": router_id},
                                               lb2={"lb_vrrp_router_id": router_id}), ["lb1", "lb2"])
    assert problems == [f"lb_vrrp_router_id must be a whole number from 1 to 255, unique among the VRRP routers of "
                        f"the network; got {router_id!r}."]


def test_a_setting_given_per_host_is_refused():
    problems = vip_settings_problems(inventory(lb2={"lb_vrrp_router_id": 52}), ["lb1", "lb2"])
    assert len(problems) == 1 and problems[0].startswith("lb_vrrp_router_id differs between the lb hosts (lb1: 51; lb2: 52)")
    problems = vip_settings_problems(inventory(lb2={"lb_vip": ""}), ["lb1", "lb2"])
    assert len(problems) == 1 and problems[0].startswith("lb_vip differs between the lb hosts")


@pytest.mark.parametrize("vip", ["10.89.160.300", "10.89.160.250/24", "fd00::1", "lb-vip.example.org"])
def test_a_vip_that_is_no_ipv4_address_is_refused(vip):
    problems = vip_settings_problems(inventory(lb1={"lb_vip": vip}, lb2={"lb_vip": vip}), ["lb1", "lb2"])
    assert problems == [f"lb_vip must be an IPv4 address such as 192.0.2.100, free in the lb hosts' network; got {vip!r}."]


def test_prefix_and_advert_interval_out_of_range_are_refused():
    bad = {"lb_vip_prefix": 33, "lb_vrrp_advert_interval": 0.05}
    problems = vip_settings_problems(inventory(lb1=bad, lb2=bad), ["lb1", "lb2"])
    assert [problem.split(" must ")[0] for problem in problems] == ["lb_vip_prefix", "lb_vrrp_advert_interval"]


def test_a_vip_equal_to_an_inventory_address_is_refused():
    problems = vip_settings_problems(inventory(lb1={"lb_vip": "10.89.160.13"}, lb2={"lb_vip": "10.89.160.13"}),
                                     ["lb1", "lb2"])
    assert problems == ["lb_vip is 10.89.160.13, the address of app1 (its ansible_host): the floating address must be "
                        "one no host has, free in the lb hosts' network."]


def ip_output(address, prefix=24, interface="eth0", secondaries=()):
    """What roles/lb/files/addresses.py prints on a host with ``address``."""
    entries = [{"address": address, "prefix": prefix, "secondary": False}]
    entries += [{"address": extra, "prefix": prefix, "secondary": True} for extra in secondaries]
    return {"stdout": json.dumps({"default": interface, "interfaces": {
        "lo": [{"address": "127.0.0.1", "prefix": 8, "secondary": False}], interface: entries,
        "eth1": [{"address": "10.89.200.5", "prefix": 24, "secondary": False}]}})}


def scanned(lb1="10.89.160.10", lb2="10.89.160.210", app1="10.89.160.13", lb1_secondaries=("10.89.160.250",),
            prefix=24, **settings):
    """The inventory with each host's `ip -j` output registered; lb1 holds the VIP now."""
    hostvars = inventory(lb1=settings, lb2=settings)
    hostvars["lb1"]["__lb_vip_ip"] = ip_output(lb1, prefix, secondaries=lb1_secondaries)
    hostvars["lb2"]["__lb_vip_ip"] = ip_output(lb2, prefix)
    hostvars["app1"]["__lb_vip_ip"] = ip_output(app1, prefix)
    return hostvars


ALL = ["lb1", "lb2", "app1"]


def test_ip_networks_reads_addresses_and_the_default_route():
    networks = ip_networks(ip_output("10.0.0.5", secondaries=["10.0.0.100"])["stdout"])
    assert networks["default"] == "eth0"
    assert networks["interfaces"]["eth0"] == [{"address": "10.0.0.5", "prefix": 24, "secondary": False},
                                              {"address": "10.0.0.100", "prefix": 24, "secondary": True}]
    over_ssh = ip_output("10.0.0.5")["stdout"] + "\r\nShared connection to 10.0.0.5 closed.\r\n"
    assert ip_networks(over_ssh)["interfaces"]["eth0"][0]["address"] == "10.0.0.5"
    with pytest.raises(AnsibleFilterError, match="printed no JSON"):
        ip_networks("python3: can't open file")


def test_the_vip_in_the_lb_hosts_network_has_no_problem_even_where_it_is_held():
    assert vip_network_problems(scanned(), ["lb1", "lb2"], ALL) == []
    hostvars = scanned()
    scans = {host: hostvars[host]["__lb_vip_ip"]["stdout"] for host in ("lb1", "lb2")}
    assert vrrp_addresses(scans, hostvars, ["lb1", "lb2"]) == {"lb1": "10.89.160.10", "lb2": "10.89.160.210"}


def test_a_vip_outside_the_lb_hosts_subnet_is_refused():
    problems = vip_network_problems(scanned(lb2="10.89.161.210"), ["lb1", "lb2"], ALL)
    assert problems == ["lb2: lb_vip 10.89.160.250 is outside 10.89.161.0/24, the network of eth0 (10.89.161.210): "
                        "choose a free address of that network, or set lb_vip_interface to the interface of the VIP's "
                        "network."]


def test_a_prefix_other_than_the_network_s_is_refused():
    problems = vip_network_problems(scanned(lb_vip_prefix=16), ["lb1", "lb2"], ALL)
    assert problems == [f"{host}: lb_vip_prefix is 16, but eth0's network is 10.89.160.0/24: set lb_vip_prefix: 24."
                        for host in ("lb1", "lb2")]


def test_a_vip_equal_to_a_host_s_own_address_is_refused():
    problems = vip_network_problems(scanned(app1="10.89.160.250"), ["lb1", "lb2"], ALL)
    assert problems == ["app1: lb_vip 10.89.160.250 is the address of its interface eth0: the floating address must be "
                        "one no host has; choose a free address of the network."]
    # An lb host's own (primary) address, not one keepalived added.
    problems = vip_network_problems(scanned(lb2="10.89.160.250", lb1_secondaries=()), ["lb1", "lb2"], ALL)
    assert "lb2: lb_vip 10.89.160.250 is the address of its interface eth0" in " ".join(problems)


def test_an_interface_without_ipv4_is_refused_naming_it():
    problems = vip_network_problems(scanned(lb_vip_interface="eth9"), ["lb1", "lb2"], ALL)
    assert problems[0].startswith("lb1: lb_vip_interface eth9 has no IPv4 address")


def test_the_checks_need_the_scan():
    with pytest.raises(AnsibleFilterError, match="lb2 has no __lb_vip_ip"):
        vip_network_problems({**scanned(), "lb2": dict(PAIR)}, ["lb1", "lb2"], ALL)
    with pytest.raises(AnsibleFilterError, match="no addresses read from lb2"):
        vrrp_addresses({"lb1": scanned()["lb1"]["__lb_vip_ip"]["stdout"]}, scanned(), ["lb1", "lb2"])


addresses = load_script(Path(__file__).resolve().parents[2] / "roles" / "lb" / "files" / "addresses.py", "lb_addresses")


def test_the_address_reader_finds_secondary_addresses_and_the_default_route():
    """In a network namespace of its own (root, unshare): two addresses on one interface, the second
    secondary (as keepalived's VIP is), and a default route through it. The machine's network is untouched."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip")
    script = ("ip link set lo up && ip addr add 10.0.0.5/24 dev lo && ip addr add 10.0.0.250/24 dev lo"
              f" && ip route add default via 10.0.0.1 dev lo && {sys.executable} {addresses.__file__}")
    output = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    networks = ip_networks(output)
    assert networks["default"] == "lo"
    assert networks["interfaces"]["lo"] == [{"address": "127.0.0.1", "prefix": 8, "secondary": False},
                                            {"address": "10.0.0.5", "prefix": 24, "secondary": False},
                                            {"address": "10.0.0.250", "prefix": 24, "secondary": True}]


def test_the_default_route_is_read_from_the_route_table():
    table = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
             "eth1\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
             "eth0\t00000000\t01003C0A\t0003\t0\t0\t100\t00000000\n")
    assert addresses.default_interface(table) == "eth0"
    assert addresses.default_interface(table.splitlines()[0]) == ""
