#!/usr/bin/env python3
"""The local lab's hosts: lb1 (group lb), app1..appN (group app), redis1 (group redis), db1 (group db).

N, the number of app hosts, is a setting of the lab: `make up APP_HOSTS=20` writes it to
.cache/lab-app-hosts, which every later command reads (make deploy, make status, make down); the
environment variable ROLLGATE_APP_HOSTS overrides it for one command. Default: 2.

Every host has a fixed number, its address in the lab network (.10 + number): lb1 0, redis1 1, db1 2,
appK 2 + K, so that resizing the lab never moves (nor recreates) a host that stays.

The app hosts get uneven capacities, as a fleet of mixed machines has: with two, app1 1 and app2 3,
as in the molecule stack scenarios, so that the stack tests run on the lab unchanged (make lab-test);
with more, app_capacity 1 to 4 in a fixed pattern.

The balancer kind (lb_kind) is a setting of the lab too: `make up LB_KIND=haproxy` or
`make lab-test KIND=haproxy` write it to .cache/lab-lb-kind; ROLLGATE_LB_KIND overrides it for one
command. Default: nginx. An extra var (-e lb_kind=...) still wins over both.

How Ansible reaches the hosts is a setting of the lab too: `make up LAB_CONNECTION=ssh` writes it to
.cache/lab-connection (ROLLGATE_LAB_CONNECTION overrides it). Default: podman, the project's pipelined
`podman exec` connection, as root. With ssh, every host is reached the way a production server is: over
SSH to its lab address, as the unprivileged user deploy with the lab's key (.cache/lab-ssh/), its host key
checked against the known hosts playbooks/lab_ssh.yml recorded, and sudo for become; the hosts are also in
the group lab_ssh, which lab_ssh.yml (imported by lab.yml) prepares for it.

The Debian release of the hosts is a setting of the lab too: `make up LAB_DEBIAN=mixed` writes it to
.cache/lab-debian (ROLLGATE_LAB_DEBIAN overrides it). 12, the default: every host on Debian 12 (bookworm);
13: every host on Debian 13 (trixie); mixed: every second app host (app2, app4, ...) on Debian 13, the
others on 12, a fleet in the middle of its upgrade. Each host's lab_image is the base image of its release
(scripts/bootstrap.sh makes both); a host whose release changes is made again.

Variables that depend on none of these live in group_vars/ and host_vars/ beside this script.

An Ansible inventory script: --list prints the groups and every host's variables, --host prints {}.
"""

import json
import os
import sys
from pathlib import Path

DEFAULT_APP_HOSTS = 2
MAX_APP_HOSTS = 200  # addresses .13 to .212 of the lab's /24
SIZE_FILE = Path(__file__).resolve().parents[2] / ".cache" / "lab-app-hosts"
LB_HOSTS_FILE = Path(__file__).resolve().parents[2] / ".cache" / "lab-lb-hosts"
DEFAULT_LB_HOSTS = 1
MAX_LB_HOSTS = 3
# lb2 and lb3: after the largest app host (app200 is 202), so that neither moves another host.
LB_HOST_NUMBERS = {"lb1": 0, "lb2": 203, "lb3": 204}
# The pair's floating address (lb_vip): .250 of the lab network, above every host's (.10 to .249).
LAB_VIP = "{{ lab_network_subnet | regex_replace('\\.0/24$', '') }}.250"
KIND_FILE = Path(__file__).resolve().parents[2] / ".cache" / "lab-lb-kind"
CONNECTION_FILE = Path(__file__).resolve().parents[2] / ".cache" / "lab-connection"
DEBIAN_FILE = Path(__file__).resolve().parents[2] / ".cache" / "lab-debian"
SSH_DIR = Path(__file__).resolve().parents[2] / ".cache" / "lab-ssh"
CONNECTIONS = ("podman", "ssh")
# LAB_DEBIAN: each choice, with the Debian release of an app host by its index (0 for app1); the other hosts
# run app1's.
DEBIAN_CHOICES = {"12": lambda index: "12", "13": lambda index: "13", "mixed": lambda index: "13" if index % 2 else "12"}
SUITES = {"12": "bookworm", "13": "trixie"}
BASE_IMAGE = "localhost/rollgate-base:{suite}"
# Every host's address in the lab network: .(10 + lab_host_number) of lab_network_subnet, a /24.
LAB_ADDRESS = "{{ lab_network_subnet | regex_replace('\\.0/24$', '') }}.{{ 10 + lab_host_number }}"
# And in the private network (eth1): the same last number in lab_private_network_subnet.
LAB_PRIVATE_ADDRESS = "{{ lab_private_network_subnet | regex_replace('\\.0/24$', '') }}.{{ 10 + lab_host_number }}"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from balancers import kinds  # noqa: E402  (scripts/balancers.py: the balancer kinds, standard library only)

KINDS = kinds()
DEFAULT_KIND = "nginx"
UNEVEN_CAPACITIES = (4, 2, 1, 3, 2, 4, 3, 1)
# The molecule stack scenarios' capacities (molecule/stack_*/molecule.yml), for a lab of two app hosts.
TWO_HOST_CAPACITIES = (1, 3)


def lab_setting(variable: str, kept: Path) -> tuple[str, str]:
    """(where it came from, text) of a lab setting: the environment variable, else the file that keeps it;
    ("", "") when neither says."""
    text = os.environ.get(variable, "").strip()
    if text:
        return variable, text
    if kept.is_file():
        return str(kept), kept.read_text(encoding="utf-8").strip()
    return "", ""


def host_count(setting: str, kept: Path, default: int, maximum: int, fix: str) -> int:
    """ROLLGATE_<setting>, else the file that keeps it, else the default; exits naming the setting when it
    is not a whole number from 1 to maximum."""
    source, text = lab_setting(f"ROLLGATE_{setting}", kept)
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        sys.exit(f"lab inventory: {setting} (from {source}) must be a whole number from 1 to {maximum}, "
                 f"got {text!r}: {fix}")
    return int(text)


def app_host_count() -> int:
    return host_count("APP_HOSTS", SIZE_FILE, DEFAULT_APP_HOSTS, MAX_APP_HOSTS,
                      "run make up APP_HOSTS=N with such a number")


def lb_host_count() -> int:
    return host_count("LB_HOSTS", LB_HOSTS_FILE, DEFAULT_LB_HOSTS, MAX_LB_HOSTS, "run make up LB_HOSTS=2 for a balancer pair")


def lb_kind() -> str:
    """ROLLGATE_LB_KIND, else the kind file, else the default; exits naming the setting when unknown."""
    source, text = lab_setting("ROLLGATE_LB_KIND", KIND_FILE)
    if not text:
        return DEFAULT_KIND
    if text not in KINDS:
        sys.exit(f"lab inventory: the lab's balancer kind (from {source}) must be one of {', '.join(KINDS)}, "
                 f"got {text!r}: run make up LB_KIND=<one of them>")
    return text


def lab_connection() -> str:
    """ROLLGATE_LAB_CONNECTION, else the connection file, else podman; exits naming the setting when unknown."""
    source, text = lab_setting("ROLLGATE_LAB_CONNECTION", CONNECTION_FILE)
    if not text:
        return CONNECTIONS[0]
    if text not in CONNECTIONS:
        sys.exit(f"lab inventory: the lab's connection (from {source}) must be one of {', '.join(CONNECTIONS)}, "
                 f"got {text!r}: run make up LAB_CONNECTION=<one of them>")
    return text


def lab_debian() -> str:
    """ROLLGATE_LAB_DEBIAN, else the release file, else 12; exits naming the setting when unknown."""
    source, text = lab_setting("ROLLGATE_LAB_DEBIAN", DEBIAN_FILE)
    if not text:
        return "12"
    if text not in DEBIAN_CHOICES:
        sys.exit(f"lab inventory: the lab's Debian release (from {source}) must be one of {', '.join(DEBIAN_CHOICES)}, "
                 f"got {text!r}: run make up LAB_DEBIAN=<one of them>")
    return text


def ssh_variables(ssh_dir: Path = SSH_DIR) -> dict:
    """Each host's variables on the SSH lab: its lab address, the deploy user, the lab's key and known hosts."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": "{{ lab_address }}",
        "ansible_user": "deploy",
        "lab_ssh_dir": str(ssh_dir),
        "ansible_ssh_private_key_file": "{{ lab_ssh_dir }}/id_ed25519",
        "ansible_ssh_common_args": "-o UserKnownHostsFile={{ lab_ssh_dir }}/known_hosts -o IdentitiesOnly=yes",
        # The deploy user's own temporary directory (the podman lab's is root's).
        "ansible_remote_tmp": "~/.ansible/tmp",
    }


def inventory(app_hosts: int, kind: str = DEFAULT_KIND, connection: str = CONNECTIONS[0], debian: str = "12",
              lb_hosts: int = DEFAULT_LB_HOSTS) -> dict:
    names = [f"app{number}" for number in range(1, app_hosts + 1)]
    balancers = [f"lb{number}" for number in range(1, lb_hosts + 1)]

    def image(index: int) -> str:
        return BASE_IMAGE.format(suite=SUITES[DEBIAN_CHOICES[debian](index)])

    hostvars: dict[str, dict] = {name: {"lab_host_number": number, "lab_image": image(0)}
                                 for number, name in enumerate(("lb1", "redis1", "db1"))}
    for name in balancers[1:]:
        hostvars[name] = {"lab_host_number": LB_HOST_NUMBERS[name], "lab_image": image(0)}
    for index, name in enumerate(names):
        hostvars[name] = {"lab_host_number": 3 + index, "lab_image": image(index)}
        capacities = TWO_HOST_CAPACITIES if app_hosts <= 2 else UNEVEN_CAPACITIES
        hostvars[name]["app_capacity"] = capacities[index % len(capacities)]
    for variables in hostvars.values():
        variables["lab_address"] = LAB_ADDRESS
        variables["lab_private_address"] = LAB_PRIVATE_ADDRESS
    groups = {
        "all": {"vars": {"lb_kind": kind}},
        "lb": {"hosts": balancers, "vars": {"lb_vip": LAB_VIP} if lb_hosts > 1 else {}},
        "app": {"hosts": names},
        "redis": {"hosts": ["redis1"]},
        "db": {"hosts": ["db1"]},
        "_meta": {"hostvars": hostvars},
    }
    if connection == "ssh":
        groups["lab_ssh"] = {"hosts": list(hostvars)}
        for variables in hostvars.values():
            variables.update(ssh_variables())
    return groups


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--host":
        print("{}")
        return 0
    print(json.dumps(inventory(app_host_count(), lb_kind(), lab_connection(), lab_debian(), lb_host_count()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
