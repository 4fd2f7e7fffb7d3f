"""Every entry point one role or playbook calls in another role (include_role or import_role with
tasks_from) is declared, with its own options, in that role's meta/argument_specs.yml, so that Ansible
checks what the caller passes. The rollout calls only lb's and app's declared entry points (issue 32)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INCLUDES = {"ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"}


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# roles/rollout/tasks/balancers.yml includes the lb entry point its callers name in rollout_lb_entry.
TEMPLATED_ENTRY = "{{ rollout_lb_entry }}"


def entry_points_called() -> dict[tuple[str, str], list[str]]:
    """(role, tasks_from) -> the files that call it; a tasks_from of TEMPLATED_ENTRY stands for each
    value its callers give rollout_lb_entry."""
    files = [REPO / "site.yml", *sorted((REPO / "playbooks").glob("*.yml")), *sorted((REPO / "roles").glob("*/tasks/*.yml"))]
    called: dict[tuple[str, str], list[str]] = {}
    templated: dict[str, list[str]] = {}
    named: dict[str, list[str]] = {}
    for path in files:
        for node in walk(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if isinstance(node.get("vars"), dict) and "rollout_lb_entry" in node["vars"]:
                named.setdefault(node["vars"]["rollout_lb_entry"], []).append(str(path.relative_to(REPO)))
            for key in INCLUDES & node.keys():
                arguments = node[key]
                if isinstance(arguments, dict) and arguments.get("tasks_from") == TEMPLATED_ENTRY:
                    templated.setdefault(arguments["name"], []).append(str(path.relative_to(REPO)))
                elif isinstance(arguments, dict) and "tasks_from" in arguments:
                    entry = (arguments["name"], Path(arguments["tasks_from"]).stem)
                    called.setdefault(entry, []).append(str(path.relative_to(REPO)))
    for role, includers in templated.items():
        for entry, callers in named.items():
            called.setdefault((role, entry), []).extend(includers + callers)
    return called


def declared(role: str) -> set[str]:
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return set(specs["argument_specs"])


def test_the_rollout_calls_only_declared_lb_entry_points():
    called = {entry for entry, callers in entry_points_called().items()
              if entry[0] == "lb" and any(caller.startswith("roles/rollout/") for caller in callers)}
    assert called == {("lb", "drain"), ("lb", "restore"), ("lb", "wait_serving"), ("lb", "status")}, called
    assert {name for _, name in called} <= declared("lb")


def test_the_rollout_switches_releases_through_the_app_entry_point_activate():
    called = {entry for entry, callers in entry_points_called().items()
              if entry[0] == "app" and any(caller.startswith("roles/rollout/") for caller in callers)}
    assert called == {("app", "activate")}, called
    assert "activate" in declared("app")
    assert "current_link" not in (REPO / "roles" / "rollout" / "tasks" / "move.yml").read_text(encoding="utf-8")


def test_every_entry_point_called_is_declared():
    undeclared = {entry for entry in entry_points_called() if entry[1] not in declared(entry[0])}
    assert undeclared == set(), undeclared
