"""What the app scenario's tests share: its folder, its variables, its client hosts (the app host and one in
no group), and a playbook of it run against its hosts, read back per host from the PLAY RECAP."""

import os
import re
import subprocess
from pathlib import Path

import testinfra
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
SCENARIO_VARS = yaml.safe_load((SCENARIO / "scenario_vars.yml").read_text(encoding="utf-8"))

app = testinfra.get_host("podman://ap-app1")
other = testinfra.get_host("podman://ap-other1")


def private_address(name: str) -> str:
    """A host's private address, as the client hosts resolve it."""
    return app.check_output(f"getent ahostsv4 {name}").split()[0]


def run_scenario_playbook(name: str) -> tuple[subprocess.CompletedProcess, str, dict[str, tuple[int, int]]]:
    """Run a playbook of the scenario's folder against its inventory: the run, its whole output, and each
    host's (changed, failed) counts from the PLAY RECAP."""
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO / name)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    recap = {host: (int(changed), int(failed)) for host, changed, failed in re.findall(
        r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", run.stdout, re.M)}
    return run, run.stdout + run.stderr, recap


def assert_stops_before_any_change(playbook: str, host: str, message: str) -> None:
    """The playbook (a role with a secret left empty) fails on `host` with `message` and a word on
    ansible-vault, having changed nothing."""
    run, output, recap = run_scenario_playbook(playbook)
    assert run.returncode != 0, output
    assert message in output
    assert "ansible-vault" in output
    assert recap.get(host) == (0, 1), (recap, output[-4000:])
