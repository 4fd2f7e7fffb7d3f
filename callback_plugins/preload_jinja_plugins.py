"""Load the Jinja filters and tests once, in the controller's main process, before the workers fork.

Ansible runs each task on each host in a worker process forked from the main one. The filter and test
plugins are loaded lazily, on the first template that needs one, so the main process usually has none
loaded, and every worker loads and wraps all of them again, then exits with what it loaded. Loading them
in the main process at the start of each play lets every worker inherit them. The loader clears this
cache itself when a role adds a plugin directory, so a play sees the same plugins as without this plugin.
Measured on this machine (docs/testing.md): check_inventory.yml on the lab's inventory, 12.5-14.1 CPU-s
down to 10.0-10.7; the playbook tests (tests/playbooks, 112 runs), 627 CPU-s down to 578 and 330 s down to
307 s; a site.yml that changes nothing, no difference beyond the noise (its plays load them early anyway).
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

DOCUMENTATION = """
name: preload_jinja_plugins
type: aggregate
short_description: load the Jinja filter and test plugins before the workers fork
description:
  - At the start of each play, loads the filter and test plugins of ansible-core and of the configured
    plugin directories in the main process, so that the worker processes forked for each task inherit
    them instead of loading them again. Changes no output and no result.
"""


class CallbackModule(CallbackBase):
    """Warms the Jinja plugin loaders' cache; prints nothing."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "preload_jinja_plugins"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_play_start(self, play):
        # all() is a generator: the loading happens as it is consumed.
        list(filter_loader.all())
        list(test_loader.all())
