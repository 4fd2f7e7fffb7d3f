"""Helpers shared by the stack tests and the molecule scenarios' testinfra tests (molecule/ is on
sys.path through conftest.py).

The stack tests (molecule/resources/stack_tests) run against one of two targets, and whatever differs
between them comes from `stack()`: the molecule `stack` scenario (the default: molecule sets its
inventory, config and STACK_* variables) or the running lab (STACK_TARGET=lab, set by
scripts/lab_test.py, which `make lab-test` runs): its inventory (inventories/lab), ansible.cfg, host
names and its vault (scripts/lab_vault.py).

One stack serves every balancer in turn: STACK_LB_KIND is the balancer it runs when the tests start,
STACK_KINDS the balancers they switch it to, one after the other (`switch_balancer`, which keeps the
fleet's running version). Every playbook a test runs is told the balancer the stack runs now.
"""

import functools
import importlib.util
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
from pathlib import Path

import testinfra
import yaml

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_INVENTORY = os.path.join(PROJECT_DIR, "inventories", "lab")
# A setting that names a vault variable, as group_vars/all/main.yml names each secret.
VAULT_REFERENCE = re.compile(r"^\{\{\s*(?P<name>vault_\w+)\s*\}\}$")


@dataclass(frozen=True)
class Stack:
    """The stack the tests run against."""

    target: str  # "molecule" or "lab"
    kind: str  # the balancer the stack runs when the tests start: nginx, haproxy or apache
    kinds: tuple[str, ...]  # the balancers the per-kind tests run with, in turn
    http_port: int  # the balancer's ports, published on 127.0.0.1
    https_port: int
    prefix: str  # of the container names: "st-" for molecule's stack, "" for the lab
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
        """The variables of the `all` group, its vault decrypted and the secrets that name it resolved."""
        if self.target == "molecule":
            return read_group_vars(os.path.join(os.path.dirname(self.inventory), "group_vars", "all"))
        return {**read_group_vars(os.path.join(LAB_INVENTORY, "group_vars", "all")), "lb_kind": active_kind()}


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


def read_group_vars(path: str) -> dict:
    """The variables of a group_vars entry, a file or a directory of files as Ansible reads it, vault files
    decrypted with the lab's password (scripts/lab_vault.py), and each `"{{ vault_x }}"` replaced by its value."""
    names = sorted(os.listdir(path)) if os.path.isdir(path) else [""]
    variables: dict = {}
    for name in names:
        file = os.path.join(path, name) if name else path
        if name and not name.endswith((".yml", ".yaml", ".json")):
            continue
        with open(file, "rb") as stream:
            text = stream.read()
        if text.startswith(b"$ANSIBLE_VAULT"):
            variables.update(lab_vault().read_vault(Path(file)))
        else:
            variables.update(yaml.safe_load(text) or {})
    for name, value in variables.items():
        match = VAULT_REFERENCE.match(value) if isinstance(value, str) else None
        if match:
            variables[name] = variables[match["name"]]
    return variables


def project_module(path: str, name: str):
    """A script of the project (path relative to it), imported as the module `name`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(PROJECT_DIR, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@functools.cache
def lab_vault():
    """scripts/lab_vault.py, imported."""
    return project_module("scripts/lab_vault.py", "rollgate_lab_vault")


@functools.cache
def stack() -> Stack:
    """The stack of this test run, from the environment (see the module's docstring)."""
    # The scenarios that are not stacks (lb_*, fresh) set no STACK_* variables.
    kind = os.environ.get("STACK_LB_KIND", "")
    common = {"kind": kind, "kinds": tuple(os.environ.get("STACK_KINDS", kind).split()),
              "http_port": int(os.environ.get("STACK_HTTP_PORT", "0")),
              "https_port": int(os.environ.get("STACK_HTTPS_PORT", "0"))}
    if os.environ.get("STACK_TARGET", "molecule") == "lab":
        return Stack(target="lab", prefix="", inventory=LAB_INVENTORY,
                     ansible_config=os.path.join(PROJECT_DIR, "ansible.cfg"), **common)
    inventory_file = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(
        os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory", "ansible_inventory.yml")
    return Stack(target="molecule", prefix=os.environ.get("STACK_HOST_PREFIX", ""), inventory=inventory_file,
                 ansible_config=os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg"), **common)


# The balancer the stack runs now: the starting one until switch_balancer() changes it.
_ACTIVE: dict[str, str] = {}
_SWITCHES: list[tuple[str, subprocess.CompletedProcess]] = []


def active_kind() -> str:
    """The balancer the stack runs now."""
    return _ACTIVE.get("kind", stack().kind)


APP_ROOT = "/opt/inventory"
# The link to the config the instances run with (the app role switches it to a staged one).
APP_ENV_LINK = "/etc/inventory/inventory.env"


# Each balancer's config file on the lb host, as the lb role writes it with the default paths.
BALANCER_CONFIGS = {"nginx": "/etc/nginx/nginx.conf", "haproxy": "/etc/haproxy/haproxy.cfg",
                    "apache": "/etc/apache2/sites-available/rollgate.conf"}


# Each balancer's systemd unit on the lb host.
BALANCER_UNITS = {"nginx": "nginx", "haproxy": "haproxy", "apache": "apache2"}


def balancer_reloads(lb_host: str, kind: str) -> int:
    """How many times systemd has reloaded the balancer on ``lb_host`` (its journal's "Reloading" lines)."""
    output = container(lb_host).check_output(
        "journalctl -u %s -o cat --no-pager | grep -c '^Reloading' || true", BALANCER_UNITS[kind])
    return int(output.strip() or 0)


def fleet_version() -> str:
    """The version every app host runs (its `current` release), one exec per host; an error when they
    differ, since a switch or a converge must not choose between them."""
    versions = {}
    for name in stack().groups().get("app", []):
        target = container(name).check_output(f"readlink {APP_ROOT}/current")
        versions[name] = os.path.basename(target.rstrip("/"))
    if len(set(versions.values())) != 1:
        raise RuntimeError(f"the app hosts run different versions: {versions}")
    return next(iter(versions.values()))


def switch_balancer(kind: str, playbook: str = "site.yml") -> subprocess.CompletedProcess:
    """Switch the stack's balancer to `kind` with `playbook` -v (site.yml, or playbooks/balancer.yml for the
    lb role alone), keeping the fleet's running version (so that the switch deploys nothing). The stack
    runs `kind` afterwards only when the run passed."""
    result = run_playbook(playbook, {"lb_kind": kind, "app_version": fleet_version()}, verbosity=1)
    if result.returncode == 0:
        _ACTIVE["kind"] = kind
        _SWITCHES.append((playbook, result))
    return result


def switch_runs() -> list[tuple[str, subprocess.CompletedProcess]]:
    """The runs that switched the stack's balancer in this test session, in order: (playbook, run)."""
    return list(_SWITCHES)


def changed_counts(output: str) -> dict[str, int]:
    """changed=N of each host in an ansible-playbook run's PLAY RECAP."""
    return {host: int(count) for host, count in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)}


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
    """The variables of the stack's `all` group, secrets included (molecule/stack/group_vars/all/ or the
    lab's inventories/lab/group_vars/all/)."""
    return stack().group_vars()


def run_playbook(playbook: str, extra_vars: dict, timeout: int = 900, verbosity: int = 0,
                 extra_inventory: str | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a playbook of the project (path relative to it) against the scenario's hosts, with
    `verbosity` -v flags; with `extra_inventory`, an inventory file merged with the scenario's. It is told
    the balancer the stack runs now, unless `extra_vars` names one. `extra_args`: more options of
    ansible-playbook (--limit, say). `env`: environment variables set over ansible_env()'s."""
    verbose = [f"-{'v' * verbosity}"] if verbosity else []
    extra = ["-i", extra_inventory] if extra_inventory else []
    kind = active_kind()
    variables = {"lb_kind": kind, **extra_vars} if kind else extra_vars
    return subprocess.run(
        ["ansible-playbook", *verbose, "-i", inventory(), *extra, *(extra_args or []), os.path.join(PROJECT_DIR, playbook),
         "-e", json.dumps(variables)],
        env={**ansible_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False,
    )


def container(name: str):
    """A testinfra host for a container of the scenario, by its full name."""
    return testinfra.get_host(f"podman://{name}")


# An interface's IPv4 address, read by the kernel's SIOCGIFADDR (the base image has no iproute2).
_INTERFACE_ADDRESS = (
    "import fcntl, socket, struct, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "print(socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, struct.pack('256s', sys.argv[1].encode()))[20:24]))\n"
)


def host_address(name: str, private: bool = False) -> str:
    """A host's IPv4 address (its full container name): on the lab network (eth0), which this machine reaches as
    its gateway; with `private`, on the private network the stack's traffic takes (common_private_interface; the
    lab network when the stack has none)."""
    interface = (group_vars().get("common_private_interface") if private else None) or "eth0"
    return container(name).check_output("python3 -c %s %s", _INTERFACE_ADDRESS, interface).strip()


# Each command of argv[2] (a JSON list of argument lists) sent to Redis at argv[1]:6379 in RESP, one after the
# other on one connection, and the replies printed as a JSON list: a status or an error as Redis said it ("+OK",
# "-WRONGPASS ..."), a string or a number as its value, an array as a list; ["no connection: <error>"] when
# there is no connection (a reset: ConnectionRefusedError).
_REDIS_CLIENT = (
    "import json, socket, sys\n"
    "def reply(stream):\n"
    "    line = stream.readline().decode().rstrip('\\r\\n')\n"
    "    kind, rest = line[:1], line[1:]\n"
    "    if kind == '$':\n"
    "        return None if int(rest) < 0 else stream.read(int(rest) + 2)[:-2].decode()\n"
    "    if kind == '*':\n"
    "        return [reply(stream) for _ in range(int(rest))]\n"
    "    return int(rest) if kind == ':' else line\n"
    "try:\n"
    "    s = socket.create_connection((sys.argv[1], 6379), timeout=5)\n"
    "except OSError as e:\n"
    "    print(json.dumps(['no connection: ' + type(e).__name__])); sys.exit()\n"
    "stream, replies = s.makefile('rb'), []\n"
    "for command in json.loads(sys.argv[2]):\n"
    "    words = [word.encode() for word in command]\n"
    "    s.sendall(b'*%d\\r\\n' % len(words) + b''.join(b'$%d\\r\\n%s\\r\\n' % (len(w), w) for w in words))\n"
    "    replies.append(reply(stream))\n"
    "print(json.dumps(replies))\n"
)


def redis_replies(client: str, *commands: list[str]) -> list:
    """Redis' replies to `commands` (each a list of words: ["AUTH", password], ["SELECT", "2"]), sent in turn on
    one connection from the host `client` (its full name) to the Redis host's private address, the app's way."""
    address = host_address(host_name("redis1"), private=True)
    return json.loads(container(client).check_output("python3 -c %s %s %s", _REDIS_CLIENT, address,
                                                     json.dumps(list(commands))))


def insecure_tls() -> ssl.SSLContext:
    """The lab certificate is self-signed: tests compare it with the file instead of trusting it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


LB_CERTIFICATE = "/etc/ssl/rollgate/lb.crt"
LB_PRIVATE_KEY = "/etc/ssl/rollgate/lb.key"


def assert_a_renewed_certificate_is_served(lb, https_port: int, converge) -> None:
    """Renew the balancer's self-signed certificate as an operator would (remove the pair; the lb role
    makes a new one), run the role again with `converge`, and check that the balancer serves the new
    certificate on 127.0.0.1:`https_port` at the end of that run: that the new certificate reloaded it."""
    def installed() -> bytes:
        return ssl.PEM_cert_to_DER_cert(lb.file(LB_CERTIFICATE).content_string)

    before = installed()
    lb.check_output(f"rm {LB_CERTIFICATE} {LB_PRIVATE_KEY}")
    result = converge({})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    after = installed()
    assert after != before, "the role did not make a new certificate"
    served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", https_port)))
    assert served == after, "the balancer still serves the certificate from before the renewal"


def fetch(opener, url: str, data: dict | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, headers, body) of a request; HTTP errors are answers too."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- The live balancer's weights --------------------------------------------------------------------

# (name, weight, drained) of each server, read from the live balancer (molecule/resources/balancer_probe.py
# reads it on the lb host): HAProxy's runtime state, Apache's balancer-manager (which the rolling deploy
# drains at runtime), and for nginx, which exposes no upstream state, the X-Instance answers it serves.
BALANCER_PROBE = os.path.join(PROJECT_DIR, "molecule", "resources", "balancer_probe.py")
NGINX_SERVER_LINE = re.compile(
    r"^\s*server\s+\S+\s+weight=(?P<weight>\d+)[^#\n]*?(?P<drained>\bdown\b)?;\s*#\s*(?P<name>\S+)", re.M)
APACHE_MEMBER_ROW = re.compile(
    r"</a></td><td>(?P<name>[^<]+)</td><td>[^<]*</td><td>(?P<factor>[\d.]+)</td><td>[^<]*</td><td>(?P<status>[^<]*)</td>")
HAPROXY_DRAIN_OR_MAINT = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40
# Fewer answers than this in an nginx window are too few to weigh (at weights 1, 1, 3 and 3, the lightest
# get an eighth of them each).
NGINX_MIN_ANSWERS = 40
# The seconds of each nginx sample in a WeightSampler: at balancer_probe.NGINX_RATE (60 a second), 90
# answers. A step of a ramp must last longer than two windows for one of them to fall wholly inside it.
NGINX_SAMPLE_SECONDS = 1.5
# A served weight further than this from a whole number is no reading: on the lab at rest, 11 or 12 and
# 33 or 34 of 90 answers at weights 1 and 3 (total 8) are 0.98-1.07 and 2.93-3.02.
NGINX_WEIGHT_TOLERANCE = 0.25


def served_weights(raw: str) -> dict[str, int]:
    """nginx's weights as it serves them: each server's share of the window's answers, times the total
    weight of the config it was reloaded with (shares alone cannot give the scale; a drained server counts
    0). When nginx serves what its config says, that is the config's weights; when it does not (not
    reloaded, a server it still serves though marked down), the figures show it. ValueError for a window
    that cannot be weighed: too few answers, nginx not steady (balancer_probe.nginx_served), or a weight
    that is no whole number within NGINX_WEIGHT_TOLERANCE."""
    window = json.loads(raw)
    if not window["steady"]:
        raise ValueError("nginx was not steady during the window: it reloaded, or had its config written but not loaded")
    answers = window["answers"]
    total = sum(answers.values())
    if total < NGINX_MIN_ANSWERS:
        raise ValueError(f"{total} answers of {window['sent']} requests, fewer than {NGINX_MIN_ANSWERS}")
    configured = {m["name"]: 0 if m["drained"] else int(m["weight"]) for m in NGINX_SERVER_LINE.finditer(window["servers"])}
    scale = sum(configured.values()) / total
    weights = {name: answers.get(name, 0) * scale for name in {**configured, **answers}}
    between = {name: round(weight, 2) for name, weight in weights.items() if abs(weight - round(weight)) > NGINX_WEIGHT_TOLERANCE}
    if between:
        raise ValueError(f"served weights between two whole numbers: {between}; all of them: "
                         f"{ {name: round(weight, 2) for name, weight in sorted(weights.items())} }")
    return {name: round(weight) for name, weight in weights.items()}


def parse_weights(kind: str, raw: str) -> dict[str, int]:
    """Server name to the weight it gets traffic at, 0 when drained, from what the probe read."""
    if kind == "haproxy":
        weights = {}
        for line in raw.splitlines():
            fields = line.split()
            if len(fields) > 7 and not line.startswith("#"):
                weights[fields[3]] = 0 if int(fields[6]) & HAPROXY_DRAIN_OR_MAINT else int(fields[7])
        return weights
    if kind == "apache":
        return {m["name"]: 0 if {"Drn", "Dis"} & set(m["status"].split()) else round(float(m["factor"]))
                for m in APACHE_MEMBER_ROW.finditer(raw)}
    return served_weights(raw)


def _probe_command(kind: str, interval: float, limit: float, keep_stdin: bool, lb_host: str | None = None) -> list[str]:
    with open(BALANCER_PROBE, encoding="utf-8") as stream:
        source = stream.read()
    return ["podman", "exec", *(["-i"] if keep_stdin else []), lb_host or host_name("lb1"), "python3", "-c", source,
            kind, str(interval), str(limit)]


def live_weights(kind: str, attempts: int = 3) -> dict[str, int]:
    """The balancer's weights now (one exec; for nginx, up to `attempts` windows of answers, the first
    that can be weighed)."""
    problem = None
    for _ in range(attempts):
        output = subprocess.run(_probe_command(kind, 0, 0, keep_stdin=False), capture_output=True, text=True,
                                timeout=60, check=True, stdin=subprocess.DEVNULL).stdout
        line = json.loads(output.splitlines()[0])
        if "raw" not in line:
            problem = line
            continue
        try:
            return parse_weights(kind, line["raw"])
        except ValueError as error:
            problem = error
    raise RuntimeError(f"the {kind} balancer's state could not be read: {problem}")


class WeightSampler:
    """The balancer's weights every `interval` seconds (nginx: each NGINX_SAMPLE_SECONDS window of answers),
    from one probe process on the lb host (lb1, or `lb_host`) that runs until stopped (at most `limit` seconds):
    [(monotonic time, weights)]. A sample that cannot be read or weighed is left out."""

    def __init__(self, kind: str, interval: float = 0.3, limit: float = 1200, lb_host: str | None = None) -> None:
        interval = NGINX_SAMPLE_SECONDS if kind == "nginx" else interval
        self.kind, self.interval, self.limit, self.lb_host = kind, interval, limit, lb_host
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._process: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for text in self._process.stdout:
            try:
                line = json.loads(text)
                self.samples.append((time.monotonic(), parse_weights(self.kind, line["raw"])))
            except (KeyError, ValueError):
                continue  # the balancer could not give it (a reload between processes, an nginx window across a reload)

    def __enter__(self) -> "WeightSampler":
        self._process = subprocess.Popen(_probe_command(self.kind, self.interval, self.limit, keep_stdin=True,
                                                        lb_host=self.lb_host),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._thread.join(timeout=30)

    def settle(self, since: float, timeout: float = 15) -> None:
        """Wait for a sample whose whole window came after `since` (a playbook's end): the weights the
        balancer serves then. nginx's samples are windows of answers, so a step applied just before the
        playbook ended shows only in a window after it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(at >= since + self.interval for at, _ in self.samples):
            time.sleep(0.1)

    def history(self, server: str) -> list[int]:
        """The server's successive weights, repeats folded."""
        seen: list[int] = []
        for _, weights in self.samples:
            if server in weights and (not seen or seen[-1] != weights[server]):
                seen.append(weights[server])
        return seen


def lb_hosts() -> list[str]:
    """The lb hosts: one, or a balancer pair (lb_vip)."""
    return stack().groups().get("lb", [])


KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"


def keepalived_settings() -> dict:
    """The floating address, its prefix and the router id, from the first lb host's keepalived config."""
    text = container(lb_hosts()[0]).file(KEEPALIVED_CONFIG).content_string
    vip = re.search(r"^\s*(\d+\.\d+\.\d+\.\d+)/(\d+) dev", text, re.M)
    router_id = re.search(r"^\s*virtual_router_id (\d+)", text, re.M)
    assert vip and router_id, text
    return {"vip": vip[1], "prefix": int(vip[2]), "router_id": int(router_id[1])}


def floating_url() -> str | None:
    """https://<the floating address> with a balancer pair, where users' traffic goes; None with one lb host."""
    return f"https://{keepalived_settings()['vip']}" if len(lb_hosts()) > 1 else None


class NginxDrains:
    """The instances an nginx took out of rotation, read on its lb host from its config every 0.3 s (open-source
    nginx drains by a render and a reload: `server ... down;  # <name>`). Its served weights cannot tell a
    drained instance from one that is restarting."""

    def __init__(self, lb: str, limit: int = 900) -> None:
        script = (f"end=$(( $(date +%s) + {limit} )); while [ $(date +%s) -lt $end ]; do "
                  "grep -E '^[[:space:]]*server .* down;' /etc/nginx/nginx.conf; echo ---; sleep 0.3; done")
        self.lb, self.script, self.drained = lb, script, set()
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "NginxDrains":
        self._process = subprocess.Popen(["podman", "exec", self.lb, "sh", "-c", self.script],
                                         stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            found = re.search(r"#\s*(\S+)\s*$", line)
            if found:
                self.drained.add(found[1])

    def __exit__(self, *_exc) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=10)

    def history(self, name: str) -> list[int]:
        """As WeightSampler.history has it, for the test: [0] once drained."""
        return [0] if name in self.drained else []


def drain_watcher(kind: str, lb: str):
    """What sees `lb`'s balancer take instances out of rotation during a deploy: its own state every 0.3 s
    (HAProxy's runtime API, Apache's balancer-manager), nginx's config (NginxDrains). A context manager with
    history(name) as WeightSampler has it."""
    return NginxDrains(lb) if kind == "nginx" else WeightSampler(kind, lb_host=lb)


def instances(app_host: str, ports: tuple[int, ...] = (8000, 8001)) -> dict[int, tuple[str, dict]]:
    """Each app instance's main PID and readiness answer ({} when it gives none), in one exec."""
    script = "; ".join(
        f"echo \"{port} $(systemctl show --property=MainPID --value inventory@{port}.service) "
        f"$(curl -s -m 5 http://127.0.0.1:{port}/health/readiness)\"" for port in ports)
    states = {}
    for line in container(app_host).check_output(script).splitlines():
        port, pid, *body = line.split(" ", 2)
        try:
            readiness = json.loads(body[0]) if body and body[0].strip() else {}
        except ValueError:
            readiness = {}
        states[int(port)] = (pid, readiness)
    return states


def served_instances(lb_host: str, requests: int = 40) -> set[str]:
    """The instances (X-Instance, "app1:8000") that answer `requests` GETs through the balancer, sent from
    its own host in one exec."""
    headers = container(lb_host).check_output(
        f"for i in $(seq {requests}); do curl -sk -o /dev/null -D - https://127.0.0.1:443/health/liveness; done"
        " | grep -i '^x-instance:' || true")
    return {line.split(":", 1)[-1].strip() for line in headers.splitlines()}


def wait_until_served(app_hosts: list[str], ports: tuple[int, ...] = (8000, 8001), timeout: float = 90) -> None:
    """Until every instance answers readiness on its host and through the balancer (its X-Instance among 40
    answers from the balancer's host), as the next test expects the fleet: after a test restarted instances,
    or the database or Redis under them."""
    deadline = time.monotonic() + timeout
    expected = {f"{app}:{port}" for app in app_hosts for port in ports}
    seen: set[str] = set()
    while time.monotonic() < deadline:
        if all(body.get("status") == "ready" for app in app_hosts for _, body in instances(app, ports).values()):
            seen = served_instances(host_name("lb1"))
            if expected <= seen:
                return
        time.sleep(2)
    raise AssertionError(f"the fleet was not back in the balancer within {timeout:.0f} s: served {sorted(seen)}")


def app_drain_timeout() -> float:
    """The seconds a stopped instance gives its requests in flight (app_drain_timeout, 30 by default)."""
    return float(group_vars().get("app_drain_timeout", 30))


# --- Traffic that counts what users see ----------------------------------------------------------------

@functools.cache
def loadgen():
    """scripts/bench/loadgen.py, imported once: the load generator of the benchmarks, reused by the tests."""
    return project_module("scripts/bench/loadgen.py", "rollgate_loadgen")


@functools.cache
def vip_client():
    """scripts/bench/vip.py, imported once: the floating address seen from a client (shared with the fault suite)."""
    return project_module("scripts/bench/vip.py", "rollgate_vip")


def balancer_target():
    """The balancer's HTTPS address on 127.0.0.1, as loadgen takes it."""
    return loadgen().Target.from_url(f"https://127.0.0.1:{stack().https_port}")


def admin_session(url: str | None = None):
    """A logged-in admin session through the balancer (loadgen's SharedSession: cookie and CSRF token), on
    127.0.0.1 or at `url` (the pair's floating address)."""
    variables = group_vars()
    target = loadgen().Target.from_url(url) if url else balancer_target()
    session = loadgen().SharedSession(target, variables.get("app_admin_username", "admin"),
                                      variables["app_admin_password"], 10.0)
    session.login()
    return session


class UserTraffic:
    """What users send, through the balancer, from a thread: scripts/bench/loadgen.py's open loop at
    `rate` requests a second over `workers` concurrent keep-alive connections, each request one of three
    classes counted apart: writes (a stock movement of 1, with an Idempotency-Key), reads that touch the
    database (an item, or the item list) and GET /health.

    No request is sent twice once it was sent (loadgen's retry_stale is off): a balancer's retry is the
    balancer's business, not the client's. A request whose kept-alive connection the server closed while
    it was idle goes on a new connection before it is sent, as HTTP clients' pools do; it is counted as
    `reconnected`, a class of its own. Bounded: at most `limit_seconds`, then it stops by itself. It goes to the
    balancer on 127.0.0.1, or to `url` (the pair's floating address). With `resend_reset`, a request whose kept-alive
    connection was reset without an answer is sent once more on a new one, as browsers and client pools do
    (loadgen's retry_stale; writes carry an Idempotency-Key): the client of a floating address that moved, whose
    kept-alive connections cannot follow it. With `retry_failed` (seconds), every request that got no answer is
    sent again (loadgen's retry_failed): the client that retries idempotent requests; `failed()` is then that
    client's view, and `failed_without_retry()` what a client that does not retry would have seen.

    The rate stays under the app's rate limit per client (600 a minute): every request comes from the one
    address the balancer sees."""

    CLASSES = ("write", "read", "health")
    ITEM_PREFIX = "ZEROFAIL-"

    def __init__(self, rate: float = 8.0, workers: int = 4, write_ratio: float = 0.35, health_ratio: float = 0.3,
                 limit_seconds: float = 600.0, url: str | None = None, resend_reset: bool = False,
                 retry_failed: float = 0.0) -> None:
        self.records: list[dict] = []
        self.url = url
        self.settings = loadgen().LoadSettings(
            rate=rate, duration=limit_seconds, max_requests=int(rate * limit_seconds), workers=workers,
            timeout=70.0, write_ratio=write_ratio, drain_timeout=75.0, retry_stale=resend_reset,
            item_prefix=self.ITEM_PREFIX, health_ratio=health_ratio, retry_failed=retry_failed)
        self._stop = loadgen().StopFlag()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "UserTraffic":
        target = loadgen().Target.from_url(self.url) if self.url else balancer_target()
        session = admin_session(self.url)
        items = loadgen().ensure_items(target, session, self.ITEM_PREFIX, 4, 10.0)

        def run() -> None:
            self.records.extend(loadgen().generate_load(target, session, items, self.settings, self._stop))

        self._thread = threading.Thread(target=run, name="user-traffic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.event.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.drain_timeout + 10)

    def failed_without_retry(self) -> dict[str, list[str]]:
        """failed(), as a client that does not retry would have seen it: each request's first failure."""
        return self.failed([loadgen().without_retry(record) for record in self.records])

    def failed(self, records: list[dict] | None = None) -> dict[str, list[str]]:
        """Per class, each request the user saw fail (no answer, a reset, a timeout, a 5xx, or never sent
        in time), as 'time kind op: error detail'; classes with none are left out."""
        failures = loadgen().FAILURE_CLASSES + (loadgen().UNSENT,)
        found: dict[str, list[str]] = {}
        for record in self.records if records is None else records:
            if record["error"] in failures:
                found.setdefault(record["kind"] or "unsent", []).append(
                    f"{time.strftime('%X', time.localtime(record['t']))} {record['op']}: {record['error']}"
                    f" {record.get('status') or ''} {record.get('detail', '')}".rstrip())
        return found

    def rejected(self) -> dict[str, int]:
        """Per class, the answers the client caused (429, other 4xx): none is expected."""
        counts: dict[str, int] = {}
        for record in self.records:
            if record["error"] in loadgen().REJECTION_CLASSES:
                key = f"{record['kind']} {record['status']}"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def figures(self) -> dict[str, dict[str, int]]:
        """Per class: requests sent, failed, reconnected and (with resend_reset) resent, for the messages and the
        notes."""
        failed = self.failed()
        figures = {kind: {"sent": sum(1 for record in self.records if record["kind"] == kind),
                          "failed": len(failed.get(kind, [])),
                          "reconnected": sum(1 for record in self.records
                                             if record["kind"] == kind and record.get("reconnected"))}
                   for kind in self.CLASSES}
        if self.settings.retry_stale:
            for kind in self.CLASSES:
                figures[kind]["resent"] = sum(1 for record in self.records if record["kind"] == kind and record.get("retried"))
        if self.settings.retry_failed:
            without = self.failed_without_retry()
            for kind in self.CLASSES:
                figures[kind]["retried_after_failure"] = sum(1 for record in self.records
                                                             if record["kind"] == kind and record.get("first_error"))
                figures[kind]["failed_without_retry"] = len(without.get(kind, []))
        return figures

    def assert_none_failed(self, minimum_per_class: int = 20) -> None:
        """Enough requests of every class, none failed and none rejected."""
        figures = self.figures()
        assert all(figures[kind]["sent"] >= minimum_per_class for kind in self.CLASSES), figures
        assert self.failed() == {}, (figures, {kind: lines[:10] for kind, lines in self.failed().items()})
        assert self.rejected() == {}, (figures, self.rejected())


TRAFFIC_FIGURES = os.path.join(PROJECT_DIR, ".cache", "zero-failed-controls.jsonl")


def record_traffic(what: str, kind: str, traffic: UserTraffic, **extra) -> None:
    """One line of figures (requests per class, failed, reconnected) in TRAFFIC_FIGURES, for the notes."""
    os.makedirs(os.path.dirname(TRAFFIC_FIGURES), exist_ok=True)
    with open(TRAFFIC_FIGURES, "a", encoding="utf-8") as out:
        out.write(json.dumps({"control": what, "kind": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              **traffic.figures(), **extra}) + "\n")


def in_flight_counts(app_hosts: list[str], ports: tuple[int, ...] = (8000, 8001)) -> dict[str, int]:
    """Each instance's requests in flight (its metrics' active_connections, less the metrics request),
    read on its own host, one exec per host; -1 when it gives none."""
    counts = {}
    for app_host in app_hosts:
        script = "; ".join(f"echo \"{port} $(curl -s -m 5 http://127.0.0.1:{port}/health/metrics)\"" for port in ports)
        for line in container(app_host).check_output(script).splitlines():
            port, _, body = line.partition(" ")
            try:
                active = json.loads(body).get("active_connections")
            except (ValueError, AttributeError):
                active = None
            counts[f"{app_host}_{port}"] = active - 1 if isinstance(active, int) else -1
    return counts


class HeldWrite:
    """A stock movement held in flight for as long as the test wants: a transaction on the database host
    locks an item's row (SELECT ... FOR UPDATE, then pg_sleep), and a movement of that item, sent from a
    thread, waits for the lock; `release()` ends the transaction, and the movement completes, if its
    instance still runs. It goes through the balancer, or, given `instance` ("app1_8000"), straight to that
    instance (no balancer timeout then bounds how long it may be held: a deploy's batch is reached a minute
    or more after the start). `instance` is the one holding it, checked from the instances' in-flight
    counts, so no other traffic may run while it is being found. The transaction is ended on exit whatever
    happened; `status` (None for no answer) and `error` tell what the user saw."""

    APPLICATION_NAME = "rollgate-held-write"

    def __init__(self, app_hosts: list[str], db_host: str, instance: str | None = None) -> None:
        self.app_hosts, self.db_host, self.instance = app_hosts, db_host, instance
        self.status: int | None = None
        self.error: str | None = "no answer yet"
        self.finished_at: float | None = None
        self._lock_process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @property
    def _database(self) -> str:
        return group_vars().get("postgresql_app_database", "inventory")

    def _psql(self, sql: str) -> str:
        return container(self.db_host).check_output(
            "runuser -u postgres -- psql -XtA -d %s -c %s", self._database, sql).strip()

    def _target(self):
        if self.instance is None:
            return balancer_target()
        app_host, port = self.instance.rsplit("_", 1)
        return loadgen().Target("http", host_address(app_host), int(port))

    def _send(self, target, session, item_id: int) -> None:
        connection = target.connection(timeout=300)
        try:
            answer = loadgen().exchange(connection, "POST", f"/items/{item_id}/receive",
                                        json.dumps({"quantity": 1, "reason": "held write"}).encode(),
                                        {**session.write_headers(), "Content-Type": "application/json",
                                         "Accept": "application/json", "Idempotency-Key": os.urandom(16).hex()})
            self.status = answer.status
            self.error = None if answer.status < 300 else f"HTTP {answer.status}: {answer.body[:200]!r}"
        except Exception as exc:  # noqa: BLE001 - no answer, whatever http.client raised
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
            self.finished_at = time.time()

    def __enter__(self) -> "HeldWrite":
        try:
            return self._hold()
        except BaseException:
            self.__exit__()
            raise

    def _hold(self) -> "HeldWrite":
        session = admin_session()
        item_id = loadgen().ensure_items(balancer_target(), session, "HELD-", 1, 10.0)[0]
        self._lock_process = subprocess.Popen(
            ["podman", "exec", "-e", f"PGAPPNAME={self.APPLICATION_NAME}", self.db_host, "runuser", "-u", "postgres",
             "--", "psql", "-XtA", "-d", self._database, "-c",
             f"SELECT id FROM items WHERE id = {int(item_id)} FOR UPDATE; SELECT pg_sleep(600)"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                   f"'{self.APPLICATION_NAME}' AND state = 'active' AND wait_event = 'PgSleep'")
        deadline = time.monotonic() + 30
        while self._psql(waiting) != "1":
            assert time.monotonic() < deadline, "the row lock was not taken within 30 s"
            time.sleep(0.3)
        self._thread = threading.Thread(target=self._send, args=(self._target(), session, item_id), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while True:
            busy = [name for name, count in in_flight_counts(self.app_hosts).items() if count > 0]
            if len(busy) == 1 and self.instance in (None, busy[0]):
                self.instance = busy[0]
                return self
            assert self.finished_at is None, f"the write was not held: {self.status} {self.error}"
            assert time.monotonic() < deadline, f"the write was not seen held within 30 s: in flight on {busy}"
            time.sleep(0.2)

    def release(self) -> None:
        """End the lock's transaction: the held movement goes on."""
        self._psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                   f"'{self.APPLICATION_NAME}'")

    def wait(self, timeout: float = 120) -> None:
        """Until the movement has its answer (or no answer)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def __exit__(self, *exc_info) -> None:
        self.release()
        self.wait()
        if self._lock_process is not None:
            try:
                self._lock_process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._lock_process.kill()

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300
