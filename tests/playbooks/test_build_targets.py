"""The app role's build (playbooks/build_release.yml, the build entry point site.yml runs before any host
changes) for another host's Python than the controller's: the wheels are fetched from the package index
for that Python, and a Python no wheelhouse can be made for stops the build, naming the host and its
Python, leaving nothing behind.

The host is this controller, whose wheel target is replaced by another's (app_wheel_target, the fact the
wheel_target module sets), as a Debian 13 or an old host would report it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "library"))

import wheel_target  # noqa: E402 - needs the path above

VERSION = "0.0.1.dev1"


def build(wheelhouse_root: Path, target: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(wheelhouse_root.parent)}
    extra = {"app_version": VERSION, "app_wheelhouse_root": str(wheelhouse_root), "app_wheel_target": target}
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "playbooks/build_release.yml", "-e", json.dumps(extra)],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)


def test_a_debian_13_host_gets_the_wheels_of_its_python(tmp_path):
    trixie = wheel_target.describe("cpython", (3, 13), "glibc 2.41", "x86_64", "/usr/bin/python3")
    result = build(tmp_path / "wheels", trixie)
    assert result.returncode == 0, result.stdout[-3000:]
    with tarfile.open(tmp_path / "wheels" / VERSION / "cp313-manylinux_2_41_x86_64.tar") as archive:
        names = archive.getnames()
    assert f"rollgate_inventory-{VERSION}-py3-none-any.whl" in names
    binary = [name for name in names if "-none-any" not in name]
    # uvloop, httptools, pydantic_core, psycopg_binary, cffi: CPython 3.13's ABI; cryptography: abi3.
    assert len(binary) >= 5, names
    assert all("-cp313-cp313-" in name or "-abi3-" in name for name in binary), binary
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("rollgate-build-")]


def refused(tmp_path: Path, target: dict) -> str:
    """The build's output, one line, once it failed, leaving nothing built and no scratch directory."""
    result = build(tmp_path / "wheels", target)
    assert result.returncode != 0, result.stdout[-3000:]
    assert not list((tmp_path / "wheels").rglob("*.tar")) and not list((tmp_path / "wheels").rglob("*.whl"))
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("rollgate-build-")]
    return " ".join(result.stdout.split())


def test_a_python_without_wheels_stops_the_build_naming_the_host_and_its_python(tmp_path):
    """CPython 3.7: several pins of app/requirements.txt publish no wheel for it. Nothing half-made is left: no
    archive, not even the service's own wheel."""
    output = refused(tmp_path, wheel_target.describe("cpython", (3, 7), "glibc 2.28", "x86_64", "/usr/bin/python3"))
    assert ("No release of app_version 0.0.1.dev1 can be made for localhost (Python 3.7, cp37-manylinux_2_28_x86_64): "
            "pip download says ERROR: No matching distribution found for") in output, output[-3000:]
    assert "Nothing on the hosts has changed." in output


def test_a_python_that_is_no_target_stops_before_any_build(tmp_path):
    output = refused(tmp_path, wheel_target.describe("pypy", (3, 10), "glibc 2.36", "x86_64", "/usr/bin/pypy3"))
    assert ("No release of app_version 0.0.1.dev1 can be made for localhost (Python 3.10: the Python is pypy 3.10; "
            "wheels are built for CPython only). Nothing on the hosts has changed.") in output, output[-3000:]
