# -*- coding: utf-8 -*-
"""Filters on the names of the inventory's variables.

- ``spec_option_names``: every option name of the roles' argument specs (all their entry points).
- ``unknown_role_variables``: the variables that start with a role's prefix but that no role knows, each
  with the closest known name: a misspelt variable is otherwise ignored, and the role runs with its default.
- ``group_roles``: which role each inventory group's hosts get, read from site.yml's plays, the one place
  that says it.
- ``shadowed_vars_files``: the group_vars and host_vars files Ansible ignores, because a directory of the
  same name sits beside them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

def spec_option_names(specs: Iterable[Any]) -> list[str]:
    """The option names of every entry point of each parsed meta/argument_specs.yml, sorted, once each."""
    names: set[str] = set()
    for spec in specs:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("argument_specs"), Mapping):
            raise AnsibleFilterError(f"spec_option_names: expected parsed meta/argument_specs.yml files, got {spec!r:.200}")
        for entry_point in spec["argument_specs"].values():
            names.update((entry_point or {}).get("options") or {})
    return sorted(names)


def unknown_role_variables(variables: Mapping[str, Iterable[str]], known: Iterable[str]) -> list[str]:
    """One line per unknown name: ``name (on host, host) ... did you mean closest?`` ("every host" when
    every host of ``variables`` has it).

    ``variables``: per host, the names of its variables (inventory, extra vars). A name counts when it
    starts with a role's prefix (the first word and underscore of the ``known`` names: every role's
    variables start with its name) and is not in ``known``; users' own variables beside ours are theirs
    to name, so the caller warns and does not stop.
    """
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError(f"unknown_role_variables: expected {{host: [variable names]}}, got {variables!r:.200}")
    known_names = sorted(set(known))
    prefixes = tuple(sorted({name.split("_", 1)[0] + "_" for name in known_names}))
    hosts_by_name: dict[str, list[str]] = {}
    for host, names in variables.items():
        for name in names:
            if isinstance(name, str) and name.startswith(prefixes) and name not in known_names:
                hosts_by_name.setdefault(name, []).append(str(host))
    every_host = sorted(str(host) for host in variables)
    lines = []
    for name in sorted(hosts_by_name):
        where = "every host" if len(every_host) > 1 and sorted(hosts_by_name[name]) == every_host \
            else ", ".join(hosts_by_name[name])
        same_role = [known for known in known_names if known.startswith(name.split("_", 1)[0] + "_")]
        closest = difflib.get_close_matches(name, same_role or known_names, n=1, cutoff=0.6)
        hint = f"did you mean {closest[0]}?" if closest else "no role has a variable of a similar name."
        lines.append(f"{name} (on {where}) is set but no role knows it, so it changes "
                     f"nothing: {hint}")
    return lines


def group_roles(plays: Iterable[Any]) -> dict[str, str]:
    """{group: role} of the plays that apply one role to one group: {"db": "postgresql", ...}.

    Plays on every host (``all``, the common role) are left out: their role has no group of its own.
    """
    if isinstance(plays, (str, bytes)) or not isinstance(plays, Iterable):
        raise AnsibleFilterError(f"group_roles: expected the plays of a playbook, got {type(plays).__name__}")
    roles: dict[str, str] = {}
    for play in plays:
        if not isinstance(play, Mapping) or not isinstance(play.get("hosts"), str) or play["hosts"] == "all":
            continue
        names = [entry if isinstance(entry, str) else entry.get("role") for entry in play.get("roles") or []]
        if len(names) == 1 and isinstance(names[0], str):
            roles[play["hosts"]] = names[0]
    return roles


VARS_FILE_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def shadowed_vars_files(entries: Iterable[Any]) -> list[str]:
    """One line per vars file that Ansible never reads: ``group_vars/all.yml`` beside ``group_vars/all/``.

    ``entries``: the children of group_vars/ and host_vars/ folders, as ``ansible.builtin.find`` returns
    them (``path`` and ``isdir``). Ansible looks for a directory of the group's or host's name first and,
    when there is one, reads only the files in it, so the file of the same name is silently ignored: adding
    ``group_vars/all/vault.yml`` to an inventory with ``group_vars/all.yml`` would drop every setting in it.
    """
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Iterable):
        raise AnsibleFilterError(f"shadowed_vars_files: expected the files find returned, got {type(entries).__name__}")
    items = [(str(entry["path"]), bool(entry.get("isdir"))) for entry in entries]
    directories = {path for path, isdir in items if isdir}
    problems = []
    for path, isdir in sorted(items):
        stem, extension = os.path.splitext(path)
        if isdir or extension not in VARS_FILE_EXTENSIONS or stem not in directories:
            continue
        name = os.path.basename(stem)
        problems.append(f"{path} is never read: Ansible reads only the files in {stem}/ when that directory exists. "
                        f"Move it into the directory, for example as {stem}/main{extension or '.yml'}, "
                        f"beside the {name} files already there")
    return problems


class FilterModule:
    """Inventory name filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"spec_option_names": spec_option_names, "unknown_role_variables": unknown_role_variables,
                "group_roles": group_roles, "shadowed_vars_files": shadowed_vars_files}
