"""The tasks rollgate runs on the controller never become root: the plays that configure hosts do
(``become: true``), and a delegated task inherits that unless it says ``become: false`` itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BLOCK_KEYS = ("block", "rescue", "always")


def tasks(items: Any, become: bool | None) -> Iterator[tuple[dict, bool | None]]:
    """Each task of a task list with the become it runs with (None: not set anywhere above it)."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        own = item.get("become", become)
        if any(key in item for key in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                yield from tasks(item.get(key), own)
        else:
            yield item, own


def controller_tasks_that_become() -> list[str]:
    found = []
    playbooks = [REPO / "site.yml", *sorted((REPO / "playbooks").glob("*.yml"))]
    for path in playbooks:
        for play in yaml.safe_load(path.read_text()) or []:
            if "hosts" not in play:
                continue
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for task, become in tasks(play.get(section), play.get("become")):
                    if task.get("delegate_to") == "localhost" and become:
                        found.append(f"{path.relative_to(REPO)}: {task.get('name')}")
    # A role's task runs inside a play that may become (site.yml's do): a delegated one must say false.
    for path in sorted(REPO.glob("roles/*/tasks/**/*.yml")):
        for task, become in tasks(yaml.safe_load(path.read_text()), None):
            if task.get("delegate_to") == "localhost" and become is not False:
                found.append(f"{path.relative_to(REPO)}: {task.get('name')}")
    return found


def test_every_task_delegated_to_the_controller_says_become_false():
    assert controller_tasks_that_become() == []


def test_the_plays_that_configure_hosts_become_root_themselves():
    site = yaml.safe_load((REPO / "site.yml").read_text())
    role_plays = [play for play in site if play.get("roles")]
    assert role_plays and all(play.get("become") is True for play in role_plays), [
        play["name"] for play in role_plays if play.get("become") is not True]


def test_the_example_inventory_does_not_become_on_the_controller():
    hosts = yaml.safe_load((REPO / "inventories/production.example/hosts.yml").read_text())
    assert "ansible_become" not in hosts["all"].get("vars", {})
