"""The app role's host scripts: the config link's switch (roles/app/files/activate_release.py) and the
staleness it causes (roles/app/files/instances.py), on real files and links in a temporary directory."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

FILES = Path(__file__).resolve().parents[2] / "roles" / "app" / "files"


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


activate_release = load("activate_release")
instances = load("instances")


def config_dir(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Two configs, the older one an hour old, a unit file of the same age, and the link to the newer."""
    old, new, unit = tmp_path / "old.env", tmp_path / "new.env", tmp_path / "inventory@.service"
    for path in (old, new, unit):
        path.write_text(path.name)
    hour_ago = old.stat().st_mtime - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(unit, (hour_ago, hour_ago))
    link = tmp_path / "inventory.env"
    link.symlink_to(new)
    return old, new, unit, link


def test_switch_points_the_link_at_the_new_target_and_leaves_nothing_beside_it(tmp_path):
    old, new, _, link = config_dir(tmp_path)
    activate_release.switch(str(link), str(old))
    assert os.readlink(link) == str(old)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.env", "inventory@.service", "new.env", "old.env"]


def test_switch_to_the_target_it_has_leaves_the_link_as_it_is(tmp_path):
    _, new, _, link = config_dir(tmp_path)
    before = link.lstat()
    activate_release.switch(str(link), str(new))
    assert (link.lstat().st_ino, link.lstat().st_mtime) == (before.st_ino, before.st_mtime)


def test_a_staged_config_makes_the_instances_stale_before_the_link_moves(tmp_path):
    old, new, unit, link = config_dir(tmp_path)
    moves, _ = instances.config_state(str(link), str(old), str(unit))
    assert moves
    moves, _ = instances.config_state(str(link), str(new), str(unit))
    assert not moves


def test_a_link_switched_back_to_an_older_config_counts_from_the_switch(tmp_path):
    """A -> B -> A: A's file is older than instances started on B, but the switch back is newer."""
    old, _, unit, link = config_dir(tmp_path)
    started_on_new = old.stat().st_mtime + 60
    activate_release.switch(str(link), str(old))
    moves, changed_at = instances.config_state(str(link), str(old), str(unit))
    assert not moves
    assert changed_at > started_on_new
    assert changed_at == link.lstat().st_mtime


def test_a_changed_unit_file_counts_too(tmp_path):
    old, _, unit, link = config_dir(tmp_path)
    os.utime(link, (0, 0), follow_symlinks=False)
    os.utime(tmp_path / "new.env", (0, 0))
    assert instances.config_state(str(link), str(old), str(unit))[1] == unit.stat().st_mtime


def test_a_host_without_the_link_yet_reads_as_never_changed(tmp_path):
    """A check-mode run on a fresh host: nothing written yet, and no error."""
    missing = str(tmp_path / "missing")
    assert instances.config_state(missing, str(tmp_path / "x.env"), missing) == (True, 0.0)


def test_systemds_monotonic_start_reads_as_time_since_the_epoch():
    """Started 2.5 s after boot, read 100 s after boot at epoch 1,000,000: 999,902.5."""
    assert instances.started_since_epoch(2_500_000, 1_000_000.0, 100.0) == 999_902.5
