"""Fixtures for the unit tests of the filter plugins and modules.

The filter plugin and the module are plain Python files that Ansible loads by path; the tests import
them the same way, by putting their directories on ``sys.path``.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for plugin_dir in ("filter_plugins", "library", "scripts"):
    if str(REPO_ROOT / plugin_dir) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / plugin_dir))

from scripted_http import Script, ScriptedServer, start_scripted_server  # noqa: E402 - needs the path above


@pytest.fixture
def start_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted HTTP servers: ``start_server(script, port=0, tls=None)``; all stop after the test."""
    servers: list[ScriptedServer] = []
    lock = threading.Lock()

    def start(script: Script, port: int = 0, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = start_scripted_server(script, port, tls)
        with lock:
            servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    """Environment for running the ``ansible`` CLI as a user would, from the repository root."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # JSON results, whatever ansible.cfg says, so the tests can read them.
    env.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env
