"""Backend lists and load-balancer weights for the app tier.

Computed once here so that the nginx, HAProxy and Apache templates only render the result:

    {% set backends = hostvars | app_backends(groups['app']) %}
    {% set weights = backends | instance_capacities | upstream_weights('haproxy') %}

or, in one step, with the rolling deploy's drained backends marked:

    {% set backends = hostvars | app_backends(groups['app']) | weighted_backends('haproxy', ['web1_8000']) %}

The logic lives in plain functions with type hints that raise ``UpstreamError`` (a ``ValueError``);
``FilterModule`` only turns those into ``AnsibleFilterError`` so a play fails with the message.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import itertools
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError


def _balancers_module():
    """scripts/balancers.py, the one Python place that knows each balancer kind."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "balancers.py"
    spec = importlib.util.spec_from_file_location("rollgate_balancers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


balancers = _balancers_module()

# Highest weight each balancer gets, from its roles/lb/vars/kinds/<kind>.yml (weight_max): HAProxy
# accepts 0-256 and Apache's loadfactor 1-100; nginx has no upper limit, and 100 is our choice.
BALANCER_MAX_WEIGHT: dict[str, int] = {kind: balancers.max_weight(kind) for kind in balancers.kinds()}

DEFAULT_INSTANCE_PORTS: tuple[int, ...] = (8000, 8001)
MAX_PORT = 65535

# A capacity is treated as an exact fraction when it is within this relative distance of one with a
# denominator up to _MAX_DENOMINATOR: 4 vCPUs over 3 instances is 1.333..., which should stay 4/3.
_MAX_DENOMINATOR = 10_000
_EXACT_RELATIVE_TOLERANCE = Fraction(1, 10**9)

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


class UpstreamError(ValueError):
    """A capacity, balancer or inventory value the filters cannot turn into a backend list."""


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------


def balancer_max_weight(balancer: str) -> int:
    """Return the highest weight ``upstream_weights`` gives for ``balancer``."""
    if isinstance(balancer, str) and balancer in BALANCER_MAX_WEIGHT:
        return BALANCER_MAX_WEIGHT[balancer]
    choices = ", ".join(BALANCER_MAX_WEIGHT)
    raise UpstreamError(f"unknown balancer {balancer!r}: expected one of {choices}")


def checked_capacity(name: Any, value: Any) -> Fraction:
    """Return ``value`` as an exact fraction, or raise if it is not a finite number >= 0.

    Booleans are refused although Python counts them as integers: ``true`` as a capacity is
    a mistake in the inventory, not 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UpstreamError(
            f"capacity of backend {name!r} must be a finite number >= 0, got {value!r} ({type(value).__name__})"
        )
    if isinstance(value, numbers.Rational):
        exact = Fraction(int(value.numerator), int(value.denominator))
    elif math.isfinite(float(value)):
        exact = Fraction(float(value))
    else:
        raise UpstreamError(f"capacity of backend {name!r} must be a finite number >= 0, got {value!r}")
    if exact < 0:
        raise UpstreamError(f"capacity of backend {name!r} must be a finite number >= 0, got {value!r}")
    return exact


def upstream_weights(capacities: Mapping[Any, Any], balancer: str) -> dict[Any, int]:
    """Map each backend name to an integer weight proportional to its capacity.

    Capacity 0 gives weight 0 (drained); every positive capacity gets a weight between 1 and the
    balancer's maximum (``BALANCER_MAX_WEIGHT``). The algorithm, applied to the positive capacities:

    1. Exact ratio. If the capacities are, within a relative 1e-9, fractions with denominators up
       to 10 000, reduce them to the smallest integers in the same ratio (multiply by the least
       common denominator, divide by the greatest common divisor). If the largest of those fits
       the balancer's range, they are the weights: capacities 1, 2, 4 (or 0.5, 1, 2) give 1, 2, 4.
    2. Otherwise scale: the largest capacity gets the balancer's maximum, each other one
       ``capacity * max / largest`` rounded half up, then raised to 1 if it rounded to 0.

    Both steps are non-decreasing functions of the capacity computed in exact rational arithmetic,
    so equal capacities get equal weights and a larger capacity never gets a smaller weight.
    Rounding moves a weight by at most 0.5 of the scale; only a capacity below 1/max of the largest
    is distorted, up to weight 1. The result keeps the input's key order and the input is not
    modified.
    """
    max_weight = balancer_max_weight(balancer)
    if not isinstance(capacities, Mapping):
        raise UpstreamError(f"expected a mapping of backend name to capacity, got {type(capacities).__name__}")
    if not capacities:
        raise UpstreamError("no backends: the mapping of backend name to capacity is empty")
    exact_capacities = {name: checked_capacity(name, value) for name, value in capacities.items()}
    positive = {name: value for name, value in exact_capacities.items() if value > 0}
    if not positive:
        names = ", ".join(str(name) for name in capacities)
        raise UpstreamError(
            f"every backend has capacity 0 ({names}), so none would get traffic: give at least one a positive capacity"
        )
    weights = _exact_ratio_weights(positive.values(), max_weight)
    if weights is None:
        weights = _scaled_weights(positive.values(), max_weight)
    positive_weights = dict(zip(positive, weights, strict=True))
    return {name: positive_weights.get(name, 0) for name in capacities}


def _exact_ratio_weights(capacities: Iterable[Fraction], max_weight: int) -> list[int] | None:
    """Return the smallest integers in the same ratio as ``capacities``, or None if there are none
    within ``max_weight``."""
    simple_fractions = []
    for capacity in capacities:
        simple = capacity.limit_denominator(_MAX_DENOMINATOR)
        if abs(simple - capacity) > capacity * _EXACT_RELATIVE_TOLERANCE:
            return None
        simple_fractions.append(simple)
    common_denominator = math.lcm(*(value.denominator for value in simple_fractions))
    integers = [int(value * common_denominator) for value in simple_fractions]
    divisor = math.gcd(*integers)
    weights = [value // divisor for value in integers]
    return weights if max(weights) <= max_weight else None


def _scaled_weights(capacities: Iterable[Fraction], max_weight: int) -> list[int]:
    """Scale so the largest capacity gets ``max_weight``; round half up; keep every weight >= 1."""
    values = list(capacities)
    scale = Fraction(max_weight) / max(values)
    return [max(1, math.floor(value * scale + Fraction(1, 2))) for value in values]


# --------------------------------------------------------------------------------------------------
# Backends of the app group
# --------------------------------------------------------------------------------------------------


def _nested_fact(host_vars: Mapping[str, Any], fact: str) -> Any:
    """Return a gathered fact, whether injected as ``ansible_<fact>`` or under ``ansible_facts``."""
    facts = host_vars.get("ansible_facts")
    if isinstance(facts, Mapping) and fact in facts:
        return facts[fact]
    return host_vars.get(f"ansible_{fact}")


def instance_ports(host: str, host_vars: Mapping[str, Any]) -> list[int]:
    """Return the host's ``app_instance_ports`` (default 8000, 8001), validated and sorted."""
    ports = host_vars.get("app_instance_ports", list(DEFAULT_INSTANCE_PORTS))
    if isinstance(ports, (str, bytes, Mapping)) or not isinstance(ports, Sequence):
        raise UpstreamError(
            f"host {host!r}: app_instance_ports must be a list of ports such as [8000, 8001], got {ports!r}"
        )
    if not ports:
        raise UpstreamError(
            f"host {host!r}: app_instance_ports is empty, so the host would run no instance: "
            "list at least one port, or remove the host from the app group"
        )
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_PORT:
            raise UpstreamError(
                f"host {host!r}: app_instance_ports has {port!r}, expected integer ports between 1 and {MAX_PORT}"
            )
    sorted_ports = sorted(int(port) for port in ports)
    for lower, upper in itertools.pairwise(sorted_ports):
        if lower == upper:
            raise UpstreamError(
                f"host {host!r}: app_instance_ports lists port {lower} more than once: give each instance its own port"
            )
    return sorted_ports


def find_private_address(host_vars: Mapping[str, Any], host: str = "") -> tuple[str, str] | None:
    """Return the host's address on the private network, from its gathered facts, and where it came from.

    With ``common_private_interface`` (an interface name such as ``eth1``) it is that interface's IPv4
    address; without it, the default IPv4 address. None when the host's facts are not gathered. An
    interface the facts do not show, or one without an IPv4 address, is an error naming the variable.
    """
    interface = host_vars.get("common_private_interface")
    if interface is not None and interface != "":
        if not isinstance(interface, str) or not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", interface):
            raise UpstreamError(
                f"host {host!r}: common_private_interface must be an interface name such as eth1, got {interface!r}"
            )
        names = _nested_fact(host_vars, "interfaces")
        if not isinstance(names, Sequence) or isinstance(names, str):
            return None
        # Facts name an interface's own entry with '-' and ':' as '_' (eth0:1 is ansible_eth0_1).
        details = _nested_fact(host_vars, re.sub(r"[-:]", "_", interface))
        address = details.get("ipv4", {}).get("address") if isinstance(details, Mapping) else None
        if interface not in names or not address:
            raise UpstreamError(
                f"host {host!r}: common_private_interface is {interface}, but "
                + (f"{interface} has no IPv4 address" if interface in names else f"it has no interface {interface}")
                + f" (its interfaces: {', '.join(sorted(str(name) for name in names))}): set it to the interface of "
                "the private network, or remove it to use the host's default IPv4 address"
            )
        return str(address), "common_private_interface"
    default_ipv4 = _nested_fact(host_vars, "default_ipv4")
    if isinstance(default_ipv4, Mapping) and default_ipv4.get("address"):
        return str(default_ipv4["address"]), "ansible_default_ipv4"
    return None


def private_address(host_vars: Mapping[str, Any], host: str = "") -> str:
    """The filter: ``find_private_address``'s address alone, '' when the host's facts are not gathered."""
    found = find_private_address(host_vars, host)
    return found[0] if found else ""


def private_addresses(hostvars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str]) -> list[str]:
    """The filter ``hostvars | private_addresses(names)``: each named host's private address, in order. A host
    whose facts are not gathered, or that is not in the inventory, is an error naming it."""
    addresses = []
    for host in hosts:
        address = private_address(hostvars[host], host) if host in hostvars else ""
        if not address:
            raise UpstreamError(f"host {host!r} has no gathered network facts here: its private address is unknown "
                                "(gather its facts in an earlier play, or check that it is in the inventory)")
        addresses.append(address)
    return addresses


def backend_address(host: str, host_vars: Mapping[str, Any]) -> tuple[str, str]:
    """Return the address balancers reach the host's instances on, and the variable it came from.

    Precedence: ``app_address``, the private address from gathered facts (``find_private_address``),
    ``ansible_host``, the inventory hostname.
    """
    if host_vars.get("app_address") is not None:
        address = host_vars["app_address"]
        if not isinstance(address, str) or not address.strip():
            raise UpstreamError(
                f"host {host!r}: app_address must be a non-empty IP address or host name, got {address!r}"
            )
        return address.strip(), "app_address"
    found = find_private_address(host_vars, host)
    if found:
        return found
    if host_vars.get("ansible_host"):
        return str(host_vars["ansible_host"]), "ansible_host"
    return str(host), "inventory hostname"


def host_capacity(host: str, host_vars: Mapping[str, Any]) -> float | None:
    """Return the host's capacity: ``app_capacity`` if set, else its vCPU count from gathered facts.

    None means unknown; the caller then gives each instance capacity 1.
    """
    if host_vars.get("app_capacity") is not None:
        value = host_vars["app_capacity"]
        try:
            checked_capacity(host, value)
        except UpstreamError:
            raise UpstreamError(
                f"host {host!r}: app_capacity must be a finite number >= 0 (0 drains the host), "
                f"got {value!r} ({type(value).__name__})"
            ) from None
        return float(value)
    vcpus = _nested_fact(host_vars, "processor_vcpus")
    if isinstance(vcpus, int) and not isinstance(vcpus, bool) and vcpus > 0:
        return float(vcpus)
    return None


def backend_name(host: str, port: int) -> str:
    """Return ``<host>_<port>`` with anything but letters, digits, ``_`` and ``-`` replaced by ``_``,
    so it is valid as an HAProxy server name and an Apache route."""
    return _UNSAFE_NAME_CHARACTERS.sub("_", f"{host}_{port}")


def app_backends(hostvars: Mapping[str, Mapping[str, Any]], app_hosts: Sequence[str]) -> list[dict[str, Any]]:
    """Return one backend per app instance, in inventory order then port order.

    Each backend is ``{"name", "host", "address", "port", "capacity"}``; a host's capacity (see
    ``host_capacity``) is split evenly across its instances, and is 1 per instance when unknown.
    """
    if isinstance(app_hosts, (str, bytes)) or not isinstance(app_hosts, Iterable):
        raise UpstreamError(f"expected the list of app hosts, such as groups['app'], got {app_hosts!r}")
    hosts = [str(host) for host in app_hosts]
    if not hosts:
        raise UpstreamError("the app group is empty: add the application servers under [app] in the inventory")
    backends: list[dict[str, Any]] = []
    endpoint_owner: dict[tuple[str, int], tuple[str, str]] = {}
    name_owner: dict[str, str] = {}
    for host in hosts:
        if host not in hostvars:
            raise UpstreamError(f"host {host!r} is in the app group but has no hostvars")
        host_vars = hostvars[host]
        ports = instance_ports(host, host_vars)
        address, address_source = backend_address(host, host_vars)
        capacity = host_capacity(host, host_vars)
        per_instance = 1.0 if capacity is None else capacity / len(ports)
        for port in ports:
            other = endpoint_owner.get((address, port))
            if other is not None:
                other_host, other_source = other
                raise UpstreamError(
                    f"hosts {other_host!r} and {host!r} both put an instance on {address}:{port} "
                    f"(address from {other_source} and {address_source}): set app_address "
                    "to each host's own address, or give them different app_instance_ports"
                )
            endpoint_owner[(address, port)] = (host, address_source)
            name = backend_name(host, port)
            if name in name_owner and name_owner[name] != host:
                raise UpstreamError(
                    f"hosts {name_owner[name]!r} and {host!r} both make the backend name {name!r}: "
                    "rename one in the inventory"
                )
            name_owner[name] = host
            backends.append({"name": name, "host": host, "address": address, "port": port, "capacity": per_instance})
    return backends


def instance_names(hostvars: Mapping[str, Mapping[str, Any]], app_hosts: Sequence[str]) -> list[str]:
    """The filter ``hostvars | instance_names(groups['app'])``: every instance of the app group by the name it
    runs under (``APP_INSTANCE``, ``<host>:<port>``), in inventory order then port order."""
    if isinstance(app_hosts, (str, bytes)) or not isinstance(app_hosts, Iterable):
        raise UpstreamError(f"expected the list of app hosts, such as groups['app'], got {app_hosts!r}")
    names = []
    for host in app_hosts:
        if host not in hostvars:
            raise UpstreamError(f"host {host!r} is in the app group but has no hostvars")
        names += [f"{host}:{port}" for port in instance_ports(str(host), hostvars[host])]
    return names


def _checked_backends(backends: Any) -> list[Mapping[str, Any]]:
    if isinstance(backends, (str, bytes, Mapping)) or not isinstance(backends, Iterable):
        raise UpstreamError(f"expected the list from app_backends, got {backends!r}")
    checked = list(backends)
    seen: set[str] = set()
    for backend in checked:
        if not isinstance(backend, Mapping) or "name" not in backend or "capacity" not in backend:
            raise UpstreamError(f"expected backends with a name and a capacity, got {backend!r}")
        if backend["name"] in seen:
            raise UpstreamError(f"backend name {backend['name']!r} appears more than once")
        seen.add(backend["name"])
    return checked


def instance_capacities(backends: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return ``{name: capacity}`` for a list of backends, the input ``upstream_weights`` takes."""
    return {backend["name"]: backend["capacity"] for backend in _checked_backends(backends)}


def weighted_backends(
    backends: Iterable[Mapping[str, Any]], balancer: str, drained: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return copies of ``backends`` with ``weight`` and ``drained`` added: what a balancer
    template needs for its server lines.

    ``weight`` comes from ``upstream_weights`` over every backend's capacity, so draining one does
    not change the weights of the others. ``drained`` is true for capacity 0 (weight 0) and for
    the backends named in ``drained`` (the rolling deploy's list), which keep their weight for when
    they come back. Naming an unknown backend, or draining every backend, is an error: the first
    is a typo that would drain nothing, the second would leave nothing to take traffic.
    """
    checked = _checked_backends(backends)
    weights = upstream_weights(instance_capacities(checked), balancer)
    if drained is None:
        drained = []
    if (
        isinstance(drained, (str, bytes, Mapping))
        or not isinstance(drained, Iterable)
        or not all(isinstance(name, str) for name in drained)
    ):
        raise UpstreamError(f"drained must be a list of backend names such as ['web1_8000'], got {drained!r}")
    drained_names = set(drained)
    unknown = sorted(str(name) for name in drained_names - set(weights))
    if unknown:
        raise UpstreamError(
            f"cannot drain {', '.join(unknown)}: no such backend; the backends are {', '.join(weights)}"
        )
    serving = [name for name, weight in weights.items() if weight > 0 and name not in drained_names]
    if not serving:
        raise UpstreamError(
            f"draining {', '.join(sorted(map(str, drained_names)))} would leave no backend taking traffic: "
            "drain fewer backends at a time"
        )
    return [
        {
            **backend,
            "weight": weights[backend["name"]],
            "drained": weights[backend["name"]] == 0 or backend["name"] in drained_names,
        }
        for backend in checked
    ]


def checkable_backends(backends: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return copies of ``backends`` in which every host name is replaced by a loopback address of
    its own (127.0.1.N, N from 1 in list order); IP addresses are kept.

    nginx and HAProxy resolve backend names while checking a config, and a name in the inventory
    resolves where the balancer runs, not necessarily on the controller that generates the config.
    """
    checked = _checked_backends(backends)
    if len(checked) > 254:
        raise UpstreamError(f"cannot give {len(checked)} backends loopback addresses of their own (254 at most)")
    copies = []
    for index, backend in enumerate(checked, start=1):
        address = str(backend.get("address", ""))
        try:
            ipaddress.ip_address(address)
        except ValueError:
            address = f"127.0.1.{index}"
        copies.append({**backend, "address": address})
    return copies


# --------------------------------------------------------------------------------------------------
# Ansible glue
# --------------------------------------------------------------------------------------------------


def _as_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def filter_function(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except UpstreamError as error:
            raise AnsibleFilterError(f"{function.__name__}: {error}") from error

    return filter_function


class FilterModule:
    """Filters for the balancer roles: backend list, per-instance capacities, weights."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "upstream_weights": _as_filter(upstream_weights),
            "app_backends": _as_filter(app_backends),
            "instance_capacities": _as_filter(instance_capacities),
            "weighted_backends": _as_filter(weighted_backends),
            "checkable_backends": _as_filter(checkable_backends),
            "private_address": _as_filter(private_address),
            "private_addresses": _as_filter(private_addresses),
            "instance_names": _as_filter(instance_names),
        }
