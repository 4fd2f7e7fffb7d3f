"""The postgresql and redis roles applied again (prepare.yml a second time) change nothing: their
idempotence check, with the scenario's passwords full of quotes. The scenario's idempotence phase checks
the app role's; site.yml changing nothing on the stack's database and Redis hosts is a stack test."""

import os
import re
import subprocess
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent.parent


def test_the_database_and_redis_roles_applied_again_change_nothing():
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO / "prepare.yml")],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    changed = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", run.stdout, re.M))
    assert changed == {"ap-app1": "0", "ap-db1": "0", "ap-other1": "0", "ap-redis1": "0"}, (changed, output[-6000:])
