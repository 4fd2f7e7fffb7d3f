# The lab's connection: containers.podman.podman with pipelining.
#
# The collection's plugin runs each task as five `podman exec` calls (home directory, temporary
# directory, chmod, the module, clean-up) because it never hands stdin to `podman exec` and so cannot
# pipeline. Passing the module on stdin (`podman exec --interactive`) makes it one call, as SSH with
# pipelining does on real hosts. Everything else (file transfer through the mounted container, options)
# is the collection's.

from __future__ import annotations

DOCUMENTATION = """
    name: podman_pipelined
    short_description: containers.podman.podman with pipelining
    description:
        - Runs commands in, and copies files to and from, an existing podman container, as the
          containers.podman.podman connection does, and sends modules on stdin (pipelining).
    author: rollgate
    options:
      remote_addr:
        description:
          - The name or ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
          - User (name or UID) that runs the commands inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments of the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description:
          - Send modules on stdin instead of copying them into the container first.
        default: true
        type: boolean
        ini:
          - section: defaults
            key: pipelining
          - section: connection
            key: pipelining
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    """containers.podman.podman, with stdin passed to `podman exec` so that modules can be pipelined."""

    transport = "podman_pipelined"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        exec_args = ["exec", "--interactive"] if in_data is not None else ["exec"]
        if self.user:
            exec_args.extend(("--user", self.user))
        return self._podman(exec_args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
