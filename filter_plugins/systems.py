# -*- coding: utf-8 -*-
"""Filters on the systems the hosts run.

- ``os_release_system``: the system an /etc/os-release describes, named as the roles name their vars files
  and as Ansible's facts do: ``Debian-12`` (distribution, a dash, the major version).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

_FIELD = re.compile(r'^(?P<key>[A-Z_]+)=(?P<value>.*)$', re.MULTILINE)


def os_release_fields(text: str) -> dict[str, str]:
    """The fields of an os-release file, their quotes removed."""
    return {match["key"]: match["value"].strip().strip("\"'") for match in _FIELD.finditer(text)}


def os_release_system(content: str, encoded: bool = True) -> str:
    """``Debian-12`` for Debian 12's /etc/os-release (base64-encoded as slurp returns it, unless
    ``encoded`` is false); ``unknown`` for a part the file does not give."""
    text = base64.b64decode(content).decode("utf-8", "replace") if encoded else content
    fields = os_release_fields(text)
    # NAME="Debian GNU/Linux" is the distribution Ansible's facts call Debian; VERSION_ID="12" its release
    # (a point release such as "12.5" elsewhere: its major version).
    name = (fields.get("NAME") or "").split(" ")[0] or "unknown"
    version = (fields.get("VERSION_ID") or "").split(".")[0] or "unknown"
    return f"{name}-{version}"


class FilterModule:
    """System filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"os_release_system": os_release_system}
