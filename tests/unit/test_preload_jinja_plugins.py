"""callback_plugins/preload_jinja_plugins.py: at a play's start, the main process holds every filter and
test, rollgate's own among them, so that the workers forked for the tasks inherit them."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Run apart, in a fresh interpreter with the project's ansible.cfg: the loaders are process-wide.
PROBE = """
import sys
from ansible.plugins.loader import filter_loader, init_plugin_loader, test_loader
init_plugin_loader()
sys.path.insert(0, 'callback_plugins')
from preload_jinja_plugins import CallbackModule
before = (len(filter_loader._cached_non_collection_wrappers), len(test_loader._cached_non_collection_wrappers))
CallbackModule().v2_playbook_on_play_start(None)
filters, tests = filter_loader._cached_non_collection_wrappers, test_loader._cached_non_collection_wrappers
print(before, 'private_address' in filters, 'ansible.builtin.default' in filters, 'ansible.builtin.version' in tests)
"""


def test_a_play_start_loads_every_filter_and_test_in_the_main_process():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(0,", "0)", "True", "True", "True"], result.stdout
