# -*- coding: utf-8 -*-
"""Filters on the app's environment, as its own validator sees it.

- ``env_variable_names``: {ENV_NAME: the role variable it comes from}, read from the role's unrendered
  ``__app_environment`` (roles/app/vars/main.yml), so that the table is written once.
- ``app_config_problems``: the validator's problems per host, each named by the inventory variable to
  set, as one list of lines.
- ``env_file_changes``: what a new environment file changes against the running one, one line per setting,
  with no secret's value in it: the diff --diff can show of a file that holds secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_VARIABLE = re.compile(r"\bapp_[a-z0-9_]+\b")
_ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9_]*\b")


def env_variable_names(raw_environment: Mapping[str, Any]) -> dict[str, str]:
    """The first app_ variable each entry's template names: {"DB_POOL_MAX": "app_db_pool_max", ...}."""
    if not isinstance(raw_environment, Mapping):
        raise AnsibleFilterError("env_variable_names: expected the unrendered __app_environment mapping, "
                                 f"got {type(raw_environment).__name__}")
    names = {}
    for env_name, template in raw_environment.items():
        match = _VARIABLE.search(str(template))
        if match:
            names[str(env_name)] = match.group(0)
    return names


def _named(problem: str, names: Mapping[str, str], extra: Mapping[str, Any]) -> str:
    """The problem with each environment variable it names written as the variable to set."""
    subject = True

    def replace(match: re.Match[str]) -> str:
        nonlocal subject
        env_name = match.group(0)
        if env_name in names:
            variable = names[env_name]
        elif env_name in extra:
            variable = f"app_extra_env's {env_name}"
        else:
            return env_name
        if subject:
            subject = False
            return f"{variable} ({env_name})"
        return variable

    return _ENV_NAME.sub(replace, problem)


def app_config_problems(problems: Mapping[str, list[str]], names: Mapping[str, str],
                        extra_env: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """One line per problem: "app1: app_db_pool_max (DB_POOL_MAX) must be at least app_db_pool_min (5), got 1".

    ``problems``: the validator's output, {host: [problem, ...]}. ``names``: env_variable_names.
    ``extra_env``: each host's app_extra_env, so that a variable set there is named as such.
    """
    if not isinstance(problems, Mapping):
        raise AnsibleFilterError(f"app_config_problems: expected {{host: [problem, ...]}}, got {problems!r}")
    lines = []
    for host, host_problems in problems.items():
        extra = (extra_env or {}).get(host) or {}
        for problem in host_problems:
            lines.append(f"{host}: {_named(str(problem), names, extra)}.")
    return lines


_ENV_LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*$')
_UNESCAPE = re.compile(r"\\(.)")


def _env_settings(text: str) -> dict[str, str]:
    """{NAME: value} of an environment file as inventory.env.j2 writes it (NAME="value", escaped)."""
    settings = {}
    for line in str(text).splitlines():
        match = _ENV_LINE.match(line)
        if match:
            settings[match.group(1)] = _UNESCAPE.sub(r"\1", match.group(2))
    return settings


def env_file_changes(old_text: str, new_text: str, secrets: list[Any],
                     names: Mapping[str, str] | None = None) -> list[str]:
    """One line per setting the new file adds, removes or changes: 'DB_POOL_MAX (app_db_pool_max): "10" -> "12"'.

    A value that holds any of ``secrets`` (a password, alone or inside a URL) is never shown, only that it
    changed. ``names``: env_variable_names, to name the inventory variable of each setting.
    """
    hidden = [str(secret) for secret in secrets or [] if str(secret)]
    old, new = _env_settings(old_text), _env_settings(new_text)

    def holds_secret(value: str) -> bool:
        return any(secret in value for secret in hidden)

    def shown(value: str) -> str:
        return "(a secret, not shown)" if holds_secret(value) else json.dumps(value)

    lines = []
    for name in list(new) + [name for name in old if name not in new]:
        label = f"{name} ({names[name]})" if names and name in names else name
        if name not in old:
            lines.append(f"{label}: added, {shown(new[name])}")
        elif name not in new:
            lines.append(f"{label}: removed, was {shown(old[name])}")
        elif old[name] != new[name]:
            if holds_secret(old[name]) or holds_secret(new[name]):
                lines.append(f"{label}: changed (a secret, not shown)")
            else:
                lines.append(f"{label}: {shown(old[name])} -> {shown(new[name])}")
    return lines


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"env_variable_names": env_variable_names, "app_config_problems": app_config_problems,
                "env_file_changes": env_file_changes}
