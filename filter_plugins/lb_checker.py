# -*- coding: utf-8 -*-
"""Filters on what a balancer's own checker says of a rendered config.

- ``checker_findings``: the lines of the config the checker refused (nginx ``in FILE:LINE``, HAProxy
  ``[FILE:LINE]``, Apache ``line LINE of FILE``), each with the lb_ variables whose values it holds,
  so that the message can name the variable to fix rather than only a line of a generated file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _referenced_lines(output: str, config_file: str) -> list[int]:
    """The line numbers of config_file the checker's output names, in order, each once."""
    name = re.escape(config_file)
    patterns = (rf"\S*{name}:(\d+)", rf"line (\d+) of \S*{name}")
    found: list[int] = []
    for pattern in patterns:
        for match in re.finditer(pattern, output):
            number = int(match.group(1))
            if number not in found:
                found.append(number)
    return found


def _values(value: Any) -> list[str]:
    """The strings a variable's value can appear as in a config line."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _values(item)]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _values(item)]
    text = str(value).strip()
    return [text] if len(text) >= 2 or (text and not text.isdigit()) else []


def checker_findings(output: str, config_file: str, config_text: str,
                     variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{"line": 42, "text": "client_max_body_size 1 MB;", "variables": ["lb_nginx_client_max_body_size"]}].

    ``output``: the checker's stdout and stderr. ``config_file``: the checked file's name, as the output
    names it. ``config_text``: that file's content. ``variables``: the lb_ variables and their values.
    A line holding no variable's value gets an empty list: the template itself is at fault there.
    """
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError(f"checker_findings: variables must be a mapping, got {type(variables).__name__}")
    lines = str(config_text).splitlines()
    findings = []
    for number in _referenced_lines(str(output), str(config_file)):
        if not 1 <= number <= len(lines):
            continue
        text = lines[number - 1].strip()
        named = [name for name, value in sorted(variables.items())
                 if any(candidate in text for candidate in _values(value))]
        # A value inside a longer one names only the longer (80 in 8080, on a line that holds lb_x: 8080).
        named = [name for name in named
                 if not any(other != name and _longest(variables[name], text) in _longest(variables[other], text)
                            and len(_longest(variables[other], text)) > len(_longest(variables[name], text))
                            for other in named)]
        findings.append({"line": number, "text": text, "variables": named})
    return findings


def _longest(value: Any, text: str) -> str:
    return max((candidate for candidate in _values(value) if candidate in text), key=len, default="")


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"checker_findings": checker_findings}
