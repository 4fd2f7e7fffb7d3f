"""Helpers shared by the molecule scenarios' testinfra tests (molecule/ is on sys.path through conftest.py)."""

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import testinfra
import yaml

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inventory() -> str:
    """The scenario's inventory file (molecule writes its group_vars beside it)."""
    return os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
        os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory", "ansible_inventory.yml"
    )


def ansible_env() -> dict[str, str]:
    """The environment for ansible-playbook runs: the scenario's ansible.cfg, no colour."""
    environment = dict(os.environ)
    environment.setdefault("ANSIBLE_CONFIG", os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg"))
    environment["ANSIBLE_FORCE_COLOR"] = "0"
    environment["ANSIBLE_NOCOLOR"] = "1"
    # One line per message: the YAML result format folds long messages, which tests search.
    environment["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return environment


def group_vars() -> dict:
    """The variables of the scenario's `all` group (molecule.yml's provisioner.inventory.group_vars)."""
    with open(os.path.join(os.path.dirname(inventory()), "group_vars", "all"), encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


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
