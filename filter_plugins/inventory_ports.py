# -*- coding: utf-8 -*-
"""Filter ``port_disagreements``: the ports the inventory gives that cannot work together, before any host
changes. A service's port as the app hosts see it must be the port its own group sets (app_redis_port and
redis_port, app_db_port and postgresql_port), and no host may give one port to two things (an instance, Redis,
PostgreSQL, the balancer's HTTP, HTTPS or admin port)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# The service each app setting points at: (app variable, group, that group's variable).
AGREEMENTS = (("app_redis_port", "redis", "redis_port"), ("app_db_port", "db", "postgresql_port"))


def _value(hostvars: Mapping[str, Any], defaults: Mapping[str, Any], host: str, name: str) -> Any:
    host_vars = hostvars[host]
    return host_vars[name] if name in host_vars else defaults.get(name)


def _port(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _claims(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]], defaults: Mapping[str, Any],
            host: str) -> list[tuple[int, str]]:
    """(port, variable) of everything the host's groups run on it."""
    claims: list[tuple[int, str]] = []
    value = lambda name: _value(hostvars, defaults, host, name)  # noqa: E731 - a short local reader
    if host in groups.get("app", []):
        claims += [(_port(port), "app_instance_ports") for port in value("app_instance_ports") or []]
    if host in groups.get("redis", []):
        claims.append((_port(value("redis_port")), "redis_port"))
    if host in groups.get("db", []):
        claims.append((_port(value("postgresql_port")), "postgresql_port"))
    if host in groups.get("lb", []):
        claims.append((_port(value("lb_http_port")), "lb_http_port"))
        if str(value("lb_tls_enabled")).lower() in ("true", "yes", "1"):
            claims.append((_port(value("lb_https_port")), "lb_https_port"))
        admin = {"haproxy": "lb_haproxy_stats_port", "apache": "lb_apache_manager_port"}.get(str(value("lb_kind")))
        if admin:
            claims.append((_port(value(admin)), admin))
    return claims


def port_disagreements(hostvars: Mapping[str, Any], groups: Mapping[str, Sequence[str]],
                       defaults: Mapping[str, Any]) -> list[str]:
    """One line per problem, naming the host, both variables and the fix; [] when the ports fit."""
    if not isinstance(groups, Mapping) or not isinstance(defaults, Mapping):
        raise AnsibleFilterError("port_disagreements: expected hostvars, groups and the roles' defaults")
    problems = []
    for app_name, group, name in AGREEMENTS:
        servers = list(groups.get(group, []))
        if not servers:
            continue
        server_port = _port(_value(hostvars, defaults, servers[0], name))
        for host in groups.get("app", []):
            seen = _port(_value(hostvars, defaults, host, app_name))
            if seen != server_port:
                problems.append(
                    f"{host}: {app_name} is {seen}, but {servers[0]} (the first host of group {group}, which the app "
                    f"uses) sets {name} {server_port}: set both to one port, or leave both unset.")
    hosts = sorted({host for members in groups.values() for host in members})
    for host in hosts:
        owners: dict[Any, list[str]] = {}
        for port, name in _claims(hostvars, groups, defaults, host):
            owners.setdefault(port, []).append(name)
        for port, names in owners.items():
            if len(set(names)) > 1:
                problems.append(f"{host}: port {port} is given to {' and '.join(sorted(set(names)))}: give each its own port.")
    return problems


class FilterModule:
    """Inventory port filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"port_disagreements": port_disagreements}
