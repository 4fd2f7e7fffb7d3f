"""Helpers shared by the stack tests and the molecule scenarios' testinfra tests (molecule/ is on
sys.path through conftest.py).

The stack tests (molecule/resources/stack_tests) run against one of two targets, and whatever differs
between them comes from `stack()`: a molecule stack scenario (the default: molecule sets its inventory,
config and STACK_* variables) or the running lab (STACK_TARGET=lab, set by scripts/lab_test.py, which
`make lab-test` runs): its inventory (inventories/lab), ansible.cfg, host names and the secrets under
.cache/lab-secrets/.
"""

import functools
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import testinfra
import yaml

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_INVENTORY = os.path.join(PROJECT_DIR, "inventories", "lab")
# A lab secret in group_vars/all.yml: a password lookup of a file under lab_secrets_dir.
LAB_SECRET = re.compile(r"lookup\('ansible\.builtin\.password',\s*lab_secrets_dir ~ '/(?P<name>\w+)'")


@dataclass(frozen=True)
class Stack:
    """The stack the tests run against."""

    target: str  # "molecule" or "lab"
    kind: str  # the balancer: nginx, haproxy or apache
    http_port: int  # the balancer's ports, published on 127.0.0.1
    https_port: int
    prefix: str  # of the container names: "sn-" for molecule's nginx stack, "" for the lab
    inventory: str  # for ansible-playbook -i
    ansible_config: str

    def host(self, name: str) -> str:
        """The container of an inventory host named without the prefix: host("app1")."""
        return f"{self.prefix}{name}"

    def groups(self) -> dict[str, list[str]]:
        """Every group of the inventory with its hosts, and `all`."""
        if self.target == "lab":
            listing = json.loads(subprocess.run([sys.executable, os.path.join(LAB_INVENTORY, "hosts.py"), "--list"],
                                                capture_output=True, text=True, check=True, timeout=30).stdout)
            groups = {name: node["hosts"] for name, node in listing.items() if isinstance(node, dict) and "hosts" in node}
        else:
            with open(self.inventory, encoding="utf-8") as stream:
                listing = yaml.safe_load(stream) or {}
            # Molecule writes each group at the top level of its inventory, beside `all`; a group may
            # also be a child of another.
            groups = {}
            for name, node in listing.items():
                _collect_groups(name, node or {}, groups)
        groups["all"] = sorted({host for hosts in groups.values() for host in hosts})
        return groups

    def group_vars(self) -> dict:
        """The variables of the `all` group, secrets included (the lab's read from .cache/lab-secrets/)."""
        if self.target == "molecule":
            path = os.path.join(os.path.dirname(self.inventory), "group_vars", "all")
            with open(path, encoding="utf-8") as stream:
                return yaml.safe_load(stream) or {}
        with open(os.path.join(LAB_INVENTORY, "group_vars", "all.yml"), encoding="utf-8") as stream:
            variables = yaml.safe_load(stream) or {}
        for name, value in variables.items():
            match = LAB_SECRET.search(value) if isinstance(value, str) else None
            if match:
                variables[name] = lab_secret(match["name"])
        variables["lb_kind"] = self.kind
        return variables


def _collect_groups(name: str, node: dict, groups: dict[str, list[str]]) -> None:
    """Add the group `name` (an inventory node) and its child groups, each with all its hosts."""
    hosts = groups.setdefault(name, [])
    hosts += [host for host in _hosts_of(node) if host not in hosts]
    for child_name, child in (node.get("children") or {}).items():
        _collect_groups(child_name, child or {}, groups)


def _hosts_of(node: dict) -> list[str]:
    """Host names under an inventory node and its children."""
    names = list((node.get("hosts") or {}).keys())
    for child in (node.get("children") or {}).values():
        names += [name for name in _hosts_of(child or {}) if name not in names]
    return names


def lab_secret(name: str) -> str:
    """A lab secret as the password lookup keeps it: the first word of .cache/lab-secrets/NAME."""
    path = os.path.join(PROJECT_DIR, ".cache", "lab-secrets", name)
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read().split()[0]
    except (OSError, IndexError) as error:
        raise RuntimeError(f"the lab secret {path} is missing or empty: run make up first") from error


@functools.cache
def stack() -> Stack:
    """The stack of this test run, from the environment (see the module's docstring)."""
    # The scenarios that are not stacks (app, lb_*, redis, ...) set no STACK_* variables.
    kind = os.environ.get("STACK_LB_KIND", "")
    common = {"kind": kind, "http_port": int(os.environ.get("STACK_HTTP_PORT", "0")),
              "https_port": int(os.environ.get("STACK_HTTPS_PORT", "0"))}
    if os.environ.get("STACK_TARGET", "molecule") == "lab":
        return Stack(target="lab", prefix="", inventory=LAB_INVENTORY,
                     ansible_config=os.path.join(PROJECT_DIR, "ansible.cfg"), **common)
    inventory_file = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
        os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory", "ansible_inventory.yml")
    return Stack(target="molecule", prefix=f"s{kind[0]}-" if kind else "", inventory=inventory_file,
                 ansible_config=os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg"), **common)


def host_name(name: str) -> str:
    """The container of a stack host named without its prefix: host_name("lb1")."""
    return stack().host(name)


def inventory() -> str:
    """The stack's inventory (molecule writes its group_vars beside it)."""
    return stack().inventory


def ansible_env() -> dict[str, str]:
    """The environment for ansible-playbook runs: the stack's ansible.cfg, no colour."""
    environment = dict(os.environ)
    environment.setdefault("ANSIBLE_CONFIG", stack().ansible_config)
    environment["ANSIBLE_FORCE_COLOR"] = "0"
    environment["ANSIBLE_NOCOLOR"] = "1"
    # One line per message: the YAML result format folds long messages, which tests search.
    environment["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return environment


def group_vars() -> dict:
    """The variables of the stack's `all` group (molecule.yml's provisioner.inventory.group_vars, or the
    lab's group_vars/all.yml with its secrets)."""
    return stack().group_vars()


def run_playbook(playbook: str, extra_vars: dict, timeout: int = 900, verbosity: int = 0,
                 extra_inventory: str | None = None) -> subprocess.CompletedProcess:
    """Run a playbook of the project (path relative to it) against the scenario's hosts, with
    `verbosity` -v flags; with `extra_inventory`, an inventory file merged with the scenario's."""
    verbose = [f"-{'v' * verbosity}"] if verbosity else []
    extra = ["-i", extra_inventory] if extra_inventory else []
    return subprocess.run(
        ["ansible-playbook", *verbose, "-i", inventory(), *extra, os.path.join(PROJECT_DIR, playbook),
         "-e", json.dumps(extra_vars)],
        env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )


def container(name: str):
    """A testinfra host for a container of the scenario, by its full name."""
    return testinfra.get_host(f"podman://{name}")


def insecure_tls() -> ssl.SSLContext:
    """The lab certificate is self-signed: tests compare it with the file instead of trusting it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fetch(opener, url: str, data: dict | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, headers, body) of a request; HTTP errors are answers too."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class BackgroundTraffic:
    """GET requests through the balancer from a thread, at most `rate` a second and `limit` in all, until
    stopped; counts answers by status and failures (no answer, 5xx) with what they were."""

    def __init__(self, url: str, rate: float = 20, limit: int = 20000) -> None:
        self.url, self.rate, self.limit = url, rate, limit
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()))

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set() and sent < self.limit:
            started = time.monotonic()
            sent += 1
            try:
                status, _, _ = fetch(self._opener, self.url, timeout=10)
            except OSError as error:
                self.failures.append(f"{time.strftime('%X')} no answer: {error}")
            else:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status >= 500:
                    self.failures.append(f"{time.strftime('%X')} HTTP {status}")
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def __enter__(self) -> "BackgroundTraffic":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + len([f for f in self.failures if "no answer" in f])
