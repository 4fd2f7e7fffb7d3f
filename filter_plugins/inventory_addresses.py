# -*- coding: utf-8 -*-
"""Filters on the addresses an inventory gives an app host.

- ``address_problems``: what is wrong with one app host's address settings, each as a sentence naming
  the variable and the fix: a value that is neither an IP address nor a DNS name, an address no one can
  connect to (0.0.0.0), and a listen address the balancer could never reach (loopback, while the
  balancer runs on another host, or another address than the one the balancer is given).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
WILDCARDS = ("0.0.0.0", "::")


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_host_name(value: str) -> bool:
    """A DNS name (RFC 1123): dot-separated labels of letters, digits and hyphens, the last not all digits."""
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _connectable(variable: str, value: Any, example: str) -> str | None:
    """A problem when value is not an address or a DNS name one can connect to, else None."""
    text = value.strip() if isinstance(value, str) else None
    if not text or (_ip(text) is None and not is_host_name(text)):
        return (f"{variable} must be an IP address or a DNS name, such as {example}, without a scheme, port or "
                f"path; got {value!r}")
    if text in WILDCARDS:
        return f"{variable} is {text}, which means every address when listening and none when connecting: give {example}"
    return None


def address_problems(host: str, values: Mapping[str, Any], balancers: Mapping[str, Any]) -> list[str]:
    """The problems of one app host's addresses; [] when there are none.

    ``values``: app_listen_address, app_db_host and app_redis_host as the role sees them, app_address
    when set, and ansible_host when set. ``balancers``: each lb host's name and its ansible_host (or None), or its variables.
    """
    if not isinstance(values, Mapping) or not isinstance(balancers, Mapping):
        raise AnsibleFilterError("address_problems: expected the host's address values and {lb host: ansible_host}")
    problems = []
    app_address = values.get("app_address")
    if app_address is not None:
        problem = _connectable("app_address", app_address, "10.0.0.5 or app1.internal")
        if problem:
            problems.append(f"{host}: {problem} (the address the balancer reaches its instances on).")
    for variable, example in (("app_db_host", "10.0.0.20 or db1.internal"), ("app_redis_host", "10.0.0.21 or redis1.internal")):
        problem = _connectable(variable, values.get(variable), example)
        if problem:
            problems.append(f"{host}: {problem}.")

    listen = values.get("app_listen_address")
    listen_ip = _ip(listen.strip()) if isinstance(listen, str) else None
    if listen_ip is None:
        problems.append(f"{host}: app_listen_address must be an IP address the instances listen on, such as 0.0.0.0 "
                        f"(every address) or this host's private address; got {listen!r}.")
        return problems
    address_ip = _ip(app_address.strip()) if isinstance(app_address, str) else None
    own_address = values.get("ansible_host")
    addresses = {name: given.get("ansible_host") if isinstance(given, Mapping) else given
                 for name, given in balancers.items()}
    remote = sorted(name for name, address in addresses.items()
                    if name != host and (own_address is None or address != own_address))
    if listen_ip.is_loopback and remote:
        problems.append(f"{host}: app_listen_address is {listen}, a loopback address, which the balancer on "
                        f"{', '.join(remote)} cannot reach from its host: set it to 0.0.0.0 or to the address the "
                        "balancer reaches this host on.")
    elif str(listen_ip) not in WILDCARDS and not listen_ip.is_loopback and address_ip not in (None, listen_ip):
        problems.append(f"{host}: app_listen_address is {listen}, but app_address, where the balancer connects, is "
                        f"{app_address}: set both to the same address, or app_listen_address to 0.0.0.0.")
    return problems


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"address_problems": address_problems}
