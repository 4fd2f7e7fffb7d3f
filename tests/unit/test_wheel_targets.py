"""The wheel target of a host's Python (library/wheel_target.py) and pip's options for it
(filter_plugins/wheel_targets.py)."""

from __future__ import annotations

import os
import platform
import sys

import pytest

import wheel_target as wt
import wheel_targets as wts

DEBIAN_12 = wt.describe("cpython", (3, 11), "glibc 2.36", "x86_64", "/usr/bin/python3")
DEBIAN_13 = wt.describe("cpython", (3, 13), "glibc 2.41", "x86_64", "/usr/bin/python3")


def test_debian_12_and_13_are_two_targets() -> None:
    assert DEBIAN_12["name"] == "cp311-manylinux_2_36_x86_64"
    assert DEBIAN_13["name"] == "cp313-manylinux_2_41_x86_64"
    assert (DEBIAN_13["python_version"], DEBIAN_13["abi"], DEBIAN_13["problem"]) == ("3.13", "cp313", "")


def test_platforms_are_those_packaging_lists_best_first() -> None:
    platforms = DEBIAN_12["platforms"]
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert platforms[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    # Each legacy alias right after the glibc version it stands for (PEP 600).
    for alias, version in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
        index = platforms.index(f"{alias}_x86_64")
        assert platforms[index - 1] == f"manylinux_2_{version}_x86_64"
    assert len(platforms) == (36 - 5 + 1) + 3


def test_the_platforms_match_packaging_on_this_machine() -> None:
    """The module's list is what packaging.tags says this controller runs, manylinux part."""
    tags = pytest.importorskip("packaging.tags")
    if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
        pytest.skip("not glibc")
    minor = int(os.confstr("CS_GNU_LIBC_VERSION").split(".")[1])
    expected = [platform_tag for platform_tag in tags.platform_tags() if platform_tag.startswith("manylinux")]
    assert wt.manylinux_platforms((2, minor), platform.machine()) == expected


def test_other_machines_start_at_manylinux2014() -> None:
    platforms = wt.manylinux_platforms((2, 36), "aarch64")
    assert platforms[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert "manylinux1_aarch64" not in platforms


@pytest.mark.parametrize(("implementation", "libc", "problem"), [
    ("pypy", "glibc 2.36", "the Python is pypy 3.11; wheels are built for CPython only"),
    ("cpython", "", "the C library is not glibc; wheels are built for glibc (manylinux) only"),
    ("cpython", "musl 1.2", "the C library is musl 1.2; wheels are built for glibc (manylinux) only"),
])
def test_a_python_that_is_no_target_says_why(implementation: str, libc: str, problem: str) -> None:
    target = wt.describe(implementation, (3, 11), libc, "x86_64")
    assert (target["name"], target["problem"], target["platforms"]) == ("", problem, [])


def test_the_module_reads_the_python_running_it(capsys: pytest.CaptureFixture[str]) -> None:
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args({}), pytest.raises(SystemExit):
        wt.main()
    import json
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False
    assert result["target"]["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert result["target"]["executable"] == sys.executable


def test_download_args_name_the_target_python_abi_and_every_platform() -> None:
    args = wts.wheel_download_args(DEBIAN_13)
    assert args[:5] == ["--only-binary=:all:", "--python-version", "3.13", "--implementation", "cp"]
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--abi"] == ["cp313", "abi3", "none"]
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"] == DEBIAN_13["platforms"]


def test_download_args_refuse_a_python_that_is_no_target() -> None:
    with pytest.raises(ValueError, match="CPython only"):
        wts.wheel_download_args(wt.describe("pypy", (3, 11), "glibc 2.36", "x86_64"))


def test_targets_are_grouped_with_their_hosts_in_order() -> None:
    pypy = wt.describe("pypy", (3, 10), "glibc 2.36", "x86_64")
    groups = wts.wheel_targets_by_name(["app1", "app2", "app3", "app4"], [DEBIAN_12, DEBIAN_13, DEBIAN_12, pypy])
    assert [(group["name"], group["hosts"]) for group in groups] == [
        ("cp311-manylinux_2_36_x86_64", ["app1", "app3"]),
        ("cp313-manylinux_2_41_x86_64", ["app2"]),
        ("", ["app4"]),
    ]
    assert groups[1]["python_version"] == "3.13"
