# -*- coding: utf-8 -*-
"""Filters on the wheel targets of the app hosts (what the ``wheel_target`` module reads on each).

- ``wheel_download_args``: pip download's options that fetch the wheels one target installs, on a
  controller that runs another Python or system.
- ``wheel_targets_by_name``: the distinct targets among some hosts, each with the hosts that have it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def wheel_download_args(target: Mapping[str, Any]) -> list[str]:
    """``pip download`` options for the wheels ``target`` installs: its Python version and
    implementation, its ABI (then abi3 and none, which every CPython takes), and each platform tag it
    runs, best first. Binary wheels only: nothing is compiled for a host."""
    if not target.get("name"):
        raise ValueError(f"not a wheel target: {target.get('problem') or target!r}")
    args = ["--only-binary=:all:", "--python-version", str(target["python_version"]),
            "--implementation", str(target["implementation"])]
    for abi in (target["abi"], "abi3", "none"):
        args += ["--abi", str(abi)]
    for platform_tag in target["platforms"]:
        args += ["--platform", str(platform_tag)]
    return args


def wheel_targets_by_name(hosts: Iterable[str], targets: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct targets of ``hosts`` (``targets`` in the same order), in the order first seen, each
    as its target with ``hosts``: the hosts that have it. Hosts whose Python is no target are grouped by
    their problem, their name empty."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for host, target in zip(hosts, targets):
        key = (str(target.get("name") or ""), str(target.get("problem") or ""))
        if key not in groups:
            groups[key] = {**target, "hosts": []}
        groups[key]["hosts"].append(host)
    return list(groups.values())


class FilterModule:
    """Wheel target filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"wheel_download_args": wheel_download_args, "wheel_targets_by_name": wheel_targets_by_name}
