"""playbooks/check_reachable.yml on a real host, this controller (a local connection), as site.yml runs it
before any host changes: every host must answer and run a system rollgate supports."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_check(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    here:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: /usr/bin/python3\n")
    environment = {**os.environ, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/check_reachable.yml", *extra],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def this_system() -> str:
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return f"{fields['NAME'].strip(chr(34)).split()[0]} {fields['VERSION_ID'].strip(chr(34)).split('.')[0]}"


def test_a_host_on_a_supported_system_passes(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Stop unless every host runs a system rollgate supports" in result.stdout


def test_a_host_on_another_system_stops_the_run_naming_it_and_the_supported_ones(tmp_path):
    """The same host, refused once its system leaves the list: the negative control of the test above."""
    result = run_check(tmp_path, "-e", json.dumps({"check_reachable_supported_systems": ["Debian-99", "Other-1"]}))
    assert result.returncode != 0
    assert (f"1 host(s) run a system rollgate does not support, so no host was changed: here ({this_system()}). "
            "Supported: Debian 99 and Other 1.") in result.stdout, result.stdout[-3000:]
