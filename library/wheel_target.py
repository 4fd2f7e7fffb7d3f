#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: the wheel target of a host's Python, the one a release's venv is made with."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wheel_target
short_description: Read which binary wheels a host's Python can install
description:
  - Reports the Python version, ABI tag, C library and machine of the Python running the module (the
    host's C(python3) under Ansible's interpreter discovery), and the platform tags of the wheels it
    can install, best first, as pip and C(packaging.tags) name them.
  - The app role builds one wheelhouse per distinct RV(target.name) among the app hosts, on the
    controller, with C(pip download --python-version --abi --platform), before any host changes.
  - Only CPython on glibc (manylinux) is a target; any other Python reports RV(target.name) empty and
    says why in RV(target.problem).
  - Reads only; never reports a change.
author:
  - rollgate maintainers
options: {}
"""

EXAMPLES = r"""
- name: Read which wheels the host's Python installs
  wheel_target:
  register: app_wheel_target
"""

RETURN = r"""
target:
  description: The host's Python, as a wheel target.
  returned: always
  type: dict
  sample:
    name: cp311-manylinux_2_36_x86_64
    python_version: "3.11"
    implementation: cp
    abi: cp311
    libc: glibc 2.36
    machine: x86_64
    platforms: [manylinux_2_36_x86_64, manylinux_2_35_x86_64, "...", manylinux1_x86_64]
    executable: /usr/bin/python3
    problem: ""
"""

import os
import platform
import sys

try:
    from ansible.module_utils.basic import AnsibleModule
except ImportError:  # read_target() alone, run by a Python without Ansible (scripts/run-molecule.sh, in an image)
    AnsibleModule = None

# The legacy names of manylinux tags (PEP 600), given alongside the glibc version they stand for.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def manylinux_platforms(glibc: tuple[int, int], machine: str) -> list[str]:
    """The manylinux platform tags a glibc of this version on this machine runs, best first, as
    packaging.tags lists them: manylinux_2_<minor> down to the oldest tag of the machine, each legacy alias
    beside the version it stands for."""
    major, minor = glibc
    if major != 2:
        return []
    # x86_64 and i686 had manylinux tags from glibc 2.5; every other machine from 2.17 (manylinux2014).
    oldest = 5 if machine in ("x86_64", "i686") else 17
    platforms = []
    for version in range(minor, oldest - 1, -1):
        platforms.append(f"manylinux_2_{version}_{machine}")
        legacy = _LEGACY_MANYLINUX.get((2, version))
        if legacy and (machine in ("x86_64", "i686") or legacy == "manylinux2014"):
            platforms.append(f"{legacy}_{machine}")
    return platforms


def describe(implementation: str, version: tuple[int, int], libc: str, machine: str,
             executable: str = "") -> dict[str, object]:
    """The wheel target of a Python: ``implementation`` as sys.implementation.name, ``version`` its
    (major, minor), ``libc`` as os.confstr('CS_GNU_LIBC_VERSION') gives it ("glibc 2.36", or "" when
    not glibc), ``machine`` as platform.machine()."""
    python_version = f"{version[0]}.{version[1]}"
    target: dict[str, object] = {
        "name": "", "python_version": python_version, "implementation": "", "abi": "", "libc": libc,
        "machine": machine, "platforms": [], "executable": executable, "problem": "",
    }
    if implementation != "cpython":
        target["problem"] = f"the Python is {implementation} {python_version}; wheels are built for CPython only"
        return target
    name, _, glibc_version = libc.partition(" ")
    parts = glibc_version.split(".")
    if name != "glibc" or len(parts) < 2 or not all(part.isdigit() for part in parts[:2]):
        target["problem"] = (f"the C library is {libc or 'not glibc'}; wheels are built for glibc "
                             "(manylinux) only")
        return target
    platforms = manylinux_platforms((int(parts[0]), int(parts[1])), machine)
    if not platforms:
        target["problem"] = f"no manylinux platform is known for glibc {glibc_version} on {machine}"
        return target
    abi = f"cp{version[0]}{version[1]}"
    target.update(name=f"{abi}-{platforms[0]}", implementation="cp", abi=abi, platforms=platforms)
    return target


def read_target() -> dict[str, object]:
    """The wheel target of the Python running this."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        libc = ""
    return describe(sys.implementation.name, (sys.version_info[0], sys.version_info[1]), libc, platform.machine(),
                    sys.executable)


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, target=read_target())


if __name__ == "__main__":
    main()
