# -*- coding: utf-8 -*-
"""Filters on the versions a fleet runs.

- ``version_drift``: the message that stops a converge whose app_version differs from the version the
  instances run (a deploy since, or one that stopped part-way), so that site.yml never rolls a fleet back
  behind the operator; '' when there is nothing to stop for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

SWITCH = "app_converge_version"


def _instances_by_version(running: Mapping[str, Mapping[Any, Any]]) -> dict[str, list[str]]:
    """{version: ["host:port", ...]} in host order then port order; instances of no version left out."""
    by_version: dict[str, list[str]] = {}
    for host, ports in running.items():
        if not isinstance(ports, Mapping):
            raise AnsibleFilterError(f"version_drift: the running versions of {host!r} must be a mapping of "
                                     f"port to version, got {ports!r}")
        for port in sorted(ports, key=lambda value: int(value)):
            version = ports[port]
            if version:
                by_version.setdefault(str(version), []).append(f"{host}:{port}")
    return by_version


def version_drift(running: Mapping[str, Mapping[Any, Any]], wanted: Mapping[str, Any], converge: bool = False) -> str:
    """The message that stops a converge, or '' when every instance runs its host's app_version; with
    ``converge`` (app_converge_version true), what the converge rolls instead.

    ``running``: per app host, {port: the version its instance runs, or its `current` release when it
    does not run; '' or None on a host with no release yet}. ``wanted``: per app host, its app_version.
    """
    if not isinstance(running, Mapping) or not isinstance(wanted, Mapping):
        raise AnsibleFilterError("version_drift: expected {host: {port: version}} and {host: app_version}")
    by_version = _instances_by_version(running)
    moving = [instance for version, instances in by_version.items() for instance in instances
              if version != str(wanted.get(instance.rsplit(":", 1)[0]))]
    if not moving:
        return ""
    targets = sorted({str(wanted.get(host)) for host in running})
    if len(by_version) == 1:
        (version, _), = by_version.items()
        fleet = f"The fleet runs {version}"
        keep = f"keep {version}: set app_version: \"{version}\" in the inventory (or -e app_version={version})"
    else:
        fleet = "The fleet runs more than one version (a deploy that stopped part-way leaves it so): " + "; ".join(
            f"{version} on {', '.join(instances)}" for version, instances in by_version.items())
        keep = ("finish on one version: set app_version in the inventory to the version to run, and run "
                "make deploy VERSION=<that version> (playbooks/rolling_deploy.yml)")
    if converge:
        return (f"{fleet}, and the inventory's app_version is {', '.join(targets)}; {SWITCH} is true: "
                f"{', '.join(moving)} roll to it, batch by batch behind the balancer.")
    if len(targets) == 1:
        wanted_by, target = f"app_version is {targets[0]}", targets[0]
        roll = f"make deploy VERSION={target}, or site.yml -e {SWITCH}=true"
    else:
        wanted_by = "app_version is " + ", ".join(f"{wanted.get(host)} on {host}" for host in running)
        target, roll = "the inventory's versions", f"site.yml -e {SWITCH}=true"
    return (f"{fleet}, and the inventory's {wanted_by}: this converge would move {', '.join(moving)} to "
            f"{target}, so it stopped before any host changed. Either {keep}; or roll to {target} on purpose, "
            f"batch by batch behind the balancer: {roll}.")


class FilterModule:
    """Fleet version filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"version_drift": version_drift}
