# -*- coding: utf-8 -*-
"""Filters on the balancer pair's floating address (keepalived, VRRP).

- ``vip_settings_problems``: the lb hosts' VRRP settings that cannot work, from the inventory alone (no
  facts): one balancer kind across the pair, the same lb_vip, lb_vip_prefix and lb_vrrp_router_id on every
  lb host, each in its range, and a VIP that is no inventory host's own address.
- ``ip_networks``: a host's addresses and default route, as roles/lb/files/addresses.py reads them.
- ``vip_network_problems``: the VIP against the addresses the hosts have: inside the network of each lb
  host's interface, with that network's prefix, and no host's own address.
- ``vrrp_addresses``: each lb host's own address on the VIP's interface, for keepalived's unicast peers
  and the firewall that lets VRRP in from them alone.
- ``vip_interface``: the interface the VIP goes on.

Each problem is a sentence that names the variable and the fix.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# VRRPv3 (RFC 5798) carries the advertisement interval in centiseconds, in 12 bits: 0.01 to 40.95 s.
# Below 0.1 s a busy host misses adverts and the address flaps; keepalived itself accepts down to 0.01.
ADVERT_MIN, ADVERT_MAX = 0.1, 40.95
VRRP_ROUTER_IDS = range(1, 256)


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(str(value).strip()) if isinstance(value, str) else None
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _checked_hosts(hostvars: Any, lb_hosts: Any) -> list[str]:
    if not isinstance(hostvars, Mapping) or not isinstance(lb_hosts, Sequence) or isinstance(lb_hosts, str):
        raise AnsibleFilterError("lb_vip filters: expected hostvars and the list of lb hosts (groups['lb'])")
    missing = [host for host in lb_hosts if host not in hostvars]
    if missing:
        raise AnsibleFilterError(f"lb_vip filters: no hostvars for {', '.join(map(str, missing))}")
    return [str(host) for host in lb_hosts]


SHARED = "the pair shares one floating address"


def _same_everywhere(hostvars: Mapping[str, Any], hosts: list[str], variable: str, default: Any,
                     why: str = SHARED) -> list[str]:
    values = {}
    for host in hosts:
        values.setdefault(repr(hostvars[host].get(variable, default)), []).append(host)
    if len(values) < 2:
        return []
    seen = "; ".join(f"{', '.join(names)}: {value}" for value, names in values.items())
    return [f"{variable} differs between the lb hosts ({seen}): {why}, so set "
            f"{variable} once for the group lb (group_vars/lb.yml), not per host."]


def vip_settings_problems(hostvars: Any, lb_hosts: Any) -> list[str]:
    """The problems of the pair's settings that the inventory alone shows; [] when there are none, or
    when lb_vip is empty on every lb host (one balancer, no keepalived)."""
    hosts = _checked_hosts(hostvars, lb_hosts)
    if not hosts:
        return []
    problems = _same_everywhere(hostvars, hosts, "lb_kind", "nginx",
                                "the floating address moves between them, and each must serve the same way")
    vip_differs = _same_everywhere(hostvars, hosts, "lb_vip", "")
    if vip_differs:
        return problems + vip_differs
    first = hostvars[hosts[0]]
    vip = first.get("lb_vip", "")
    if vip in ("", None):
        return problems
    for variable in ("lb_vip_prefix", "lb_vrrp_router_id", "lb_vip_interface", "lb_vrrp_advert_interval",
                     "lb_vip_preempt"):
        problems += _same_everywhere(hostvars, hosts, variable, None)
    address = _ipv4(vip)
    if address is None:
        problems.append(f"lb_vip must be an IPv4 address such as 192.0.2.100, free in the lb hosts' network; got {vip!r}.")
    prefix = first.get("lb_vip_prefix", 24)
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 32:
        problems.append(f"lb_vip_prefix must be the prefix length of the lb hosts' network, 1 to 32 (24 for a "
                        f"255.255.255.0 netmask); got {prefix!r}.")
    router_id = first.get("lb_vrrp_router_id", 51)
    if isinstance(router_id, bool) or not isinstance(router_id, int) or router_id not in VRRP_ROUTER_IDS:
        problems.append(f"lb_vrrp_router_id must be a whole number from 1 to 255, unique among the VRRP routers of "
                        f"the network; got {router_id!r}.")
    advert = _number(first.get("lb_vrrp_advert_interval", 0.5))
    if advert is None or not ADVERT_MIN <= advert <= ADVERT_MAX:
        problems.append(f"lb_vrrp_advert_interval must be seconds from {ADVERT_MIN} to {ADVERT_MAX} (VRRPv3), such "
                        f"as 0.5; got {first.get('lb_vrrp_advert_interval')!r}.")
    if address is not None:
        for host, values in hostvars.items():
            if _ipv4(values.get("ansible_host")) == address:
                problems.append(f"lb_vip is {vip}, the address of {host} (its ansible_host): the floating address "
                                "must be one no host has, free in the lb hosts' network.")
    return problems


def ip_networks(output: Any) -> dict[str, Any]:
    """A host's IPv4 addresses and default route, as roles/lb/files/addresses.py prints them:
    ``{"default": "eth0", "interfaces": {"eth0": [{"address", "prefix", "secondary"}, ...]}}``. Its one
    line of JSON: over SSH the terminal adds its own lines ("Shared connection to ... closed.")."""
    line = next((text.strip() for text in str(output or "").splitlines() if text.strip().startswith("{")), "")
    try:
        networks = json.loads(line)
    except ValueError as exc:
        raise AnsibleFilterError(f"ip_networks: the address reader printed no JSON ({exc}): {str(output)[:200]!r}") from exc
    if not isinstance(networks, Mapping) or not isinstance(networks.get("interfaces"), Mapping):
        raise AnsibleFilterError(f"ip_networks: expected {{default, interfaces}}, got {str(output)[:200]!r}")
    return {"default": str(networks.get("default") or ""), "interfaces": dict(networks["interfaces"])}


def vip_interface(networks: Mapping[str, Any], interface: str) -> str:
    """The interface the VIP goes on: ``interface`` when set, else the one of the host's default IPv4 route."""
    return interface or str(networks.get("default") or "")


def _own_address(networks: Mapping[str, Any], interface: str, vip: str) -> dict[str, Any] | None:
    """The host's own (first) address on ``interface``: not the VIP that keepalived may have added."""
    for entry in (networks.get("interfaces") or {}).get(interface) or []:
        if entry["address"] != vip:
            return entry
    return None


def _scanned(hostvars: Mapping[str, Any], host: str, variable: str) -> dict[str, Any]:
    result = hostvars[host].get(variable)
    if not isinstance(result, Mapping) or "stdout" not in result:
        raise AnsibleFilterError(f"lb_vip filters: {host} has no {variable} (read its addresses with addresses.py first)")
    return ip_networks(result["stdout"])


def vip_network_problems(hostvars: Any, lb_hosts: Any, hosts: Any, variable: str = "__lb_vip_ip") -> list[str]:
    """The problems of the VIP against the addresses ``hosts`` have (each host's ``variable``, the
    registered output of addresses.py, see ip_networks): each lb host's interface for it must have an IPv4
    address whose network holds the VIP with lb_vip_prefix, and no host may have the VIP as its own
    address. The VIP as a secondary address of an lb host is keepalived's doing, not a conflict."""
    lb = _checked_hosts(hostvars, lb_hosts)
    if not lb or hostvars[lb[0]].get("lb_vip", "") in ("", None):
        return []
    vip = str(ipaddress.IPv4Address(str(hostvars[lb[0]]["lb_vip"])))
    prefix = int(hostvars[lb[0]].get("lb_vip_prefix", 24))
    problems = []
    for host in lb:
        networks = _scanned(hostvars, host, variable)
        interface = vip_interface(networks, str(hostvars[host].get("lb_vip_interface") or ""))
        own = _own_address(networks, interface, vip) if interface else None
        if own is None:
            problems.append(f"{host}: lb_vip_interface {interface or '(the default route interface)'} has no IPv4 "
                            f"address: set lb_vip_interface to the interface of the network that {vip} belongs to.")
            continue
        network = ipaddress.IPv4Network(f"{own['address']}/{own['prefix']}", strict=False)
        if ipaddress.IPv4Address(vip) not in network:
            problems.append(f"{host}: lb_vip {vip} is outside {network}, the network of {interface} ({own['address']}): "
                            "choose a free address of that network, or set lb_vip_interface to the interface of the "
                            "VIP's network.")
        elif network.prefixlen != prefix:
            problems.append(f"{host}: lb_vip_prefix is {prefix}, but {interface}'s network is {network}: set "
                            f"lb_vip_prefix: {network.prefixlen}.")
    for host in sorted(str(name) for name in hosts):
        for interface, entries in sorted(_scanned(hostvars, host, variable)["interfaces"].items()):
            if any(entry["address"] == vip and not (entry["secondary"] and host in lb) for entry in entries):
                problems.append(f"{host}: lb_vip {vip} is the address of its interface {interface}: the floating "
                                "address must be one no host has; choose a free address of the network.")
    return problems


def vrrp_addresses(scans: Any, hostvars: Any, lb_hosts: Any) -> dict[str, str]:
    """Each lb host's own address on its VIP interface, from ``scans`` ({host: the output of addresses.py, see
    ip_networks}), for keepalived's unicast_src_ip and unicast peers and the firewall that lets VRRP in
    from the peers alone."""
    lb = _checked_hosts(hostvars, lb_hosts)
    if not isinstance(scans, Mapping):
        raise AnsibleFilterError("vrrp_addresses: expected {lb host: the output of addresses.py}")
    addresses = {}
    for host in lb:
        if host not in scans:
            raise AnsibleFilterError(f"vrrp_addresses: no addresses read from {host} (addresses.py first)")
        networks = ip_networks(scans[host])
        interface = vip_interface(networks, str(hostvars[host].get("lb_vip_interface") or ""))
        own = _own_address(networks, interface, str(hostvars[host].get("lb_vip", "")))
        if own is None:
            raise AnsibleFilterError(f"vrrp_addresses: {host} has no IPv4 address on {interface or 'a default route'}")
        addresses[host] = own["address"]
    return addresses


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"vip_settings_problems": vip_settings_problems, "vip_network_problems": vip_network_problems,
                "vrrp_addresses": vrrp_addresses, "vip_interface": vip_interface, "ip_networks": ip_networks}
