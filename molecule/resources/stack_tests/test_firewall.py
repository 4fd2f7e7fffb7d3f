"""From outside the private network, only the balancer's ports answer: a throwaway host on the lab network
alone (an outsider: no app, Redis or database host knows it) tries every TCP port each stack host listens
on there, and the service ports besides. The app's instance ports, Redis and PostgreSQL are closed to it by
each host's firewall (nftables, common's firewall entry point); SSH stays open on every host, since the lab
reaches its hosts over SSH on that network, as an operator reaches servers from an admin network. Inside
the private network, Redis and PostgreSQL refuse the balancer host, and an app host refuses another. The
negative controls take a host's table away (app1's, db1's) and watch the outsider, or the balancer host, get in.

Why once: the firewalls and the addresses they let in are the app, Redis and PostgreSQL roles', which do not
depend on the balancer; the balancer's own ports are its listeners, checked per kind in test_stack.py.
"""

import json
import subprocess
import uuid

import pytest

from testlib import container, host_address, host_name, stack

HOSTS = ["lb1", "app1", "app2", "redis1", "db1"]
SERVICE_PORTS = [80, 443, 8000, 8001, 5432, 6379]
SSH_PORT = 22
BASE_IMAGE = "localhost/rollgate-base:bookworm"

testinfra_hosts = [host_name("lb1")]

# Every TCP port a host listens on for its lab address or any address, read from /proc/net/tcp (state 0A,
# LISTEN; addresses in the kernel's little-endian hex).
LISTENING = (
    "import socket, struct, sys\n"
    "wanted = {'0.0.0.0', sys.argv[1]}\n"
    "ports = set()\n"
    "for line in open('/proc/net/tcp').readlines()[1:]:\n"
    "    local, state = line.split()[1], line.split()[3]\n"
    "    address, port = local.split(':')\n"
    "    if state == '0A' and socket.inet_ntoa(struct.pack('<I', int(address, 16))) in wanted:\n"
    "        ports.add(int(port, 16))\n"
    "print(' '.join(map(str, sorted(ports))))\n"
)

# What the outsider sees of each address and port: open, refused (a reset) or silent (no answer in 2 s).
PROBE = (
    "import json, socket, sys\n"
    "seen = {}\n"
    "for address, port in json.loads(sys.argv[1]):\n"
    "    try:\n"
    "        socket.create_connection((address, port), timeout=2).close(); seen[f'{address}:{port}'] = 'open'\n"
    "    except ConnectionRefusedError:\n"
    "        seen[f'{address}:{port}'] = 'refused'\n"
    "    except OSError:\n"
    "        seen[f'{address}:{port}'] = 'silent'\n"
    "print(json.dumps(seen))\n"
)


def lab_network() -> str:
    """The podman network of the hosts' lab address (eth0), read from the balancer host."""
    lb = host_name("lb1")
    networks = json.loads(subprocess.run(["podman", "inspect", "--format", "{{json .NetworkSettings.Networks}}", lb],
                                         capture_output=True, text=True, check=True, timeout=30).stdout)
    address = host_address(lb)
    [name] = [name for name, network in networks.items() if network.get("IPAddress") == address]
    return name


def targets() -> dict[str, list[int]]:
    """Each host's lab address with the ports to try: every port it listens on there, and the service ports."""
    found = {}
    for name in HOSTS:
        host = host_name(name)
        address = host_address(host)
        listening = container(host).check_output("python3 -c %s %s", LISTENING, address).split()
        found[address] = sorted(set(SERVICE_PORTS) | {int(port) for port in listening})
    return found


def outsider_sees(by_address: dict[str, list[int]]) -> dict[str, str]:
    """Start a host on the lab network alone, probe, and remove it whatever happens."""
    name = f"{stack().prefix}outsider-{uuid.uuid4().hex[:8]}"
    pairs = [[address, port] for address, ports in by_address.items() for port in ports]
    try:
        result = subprocess.run(
            ["podman", "run", "--rm", "--name", name, "--network", lab_network(), BASE_IMAGE,
             "python3", "-c", PROBE, json.dumps(pairs)],
            capture_output=True, text=True, timeout=300, check=False)
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def seen():
    by_address = targets()
    return by_address, outsider_sees(by_address)


def test_from_outside_the_private_network_only_the_balancer_and_ssh_answer(seen):
    by_address, answers = seen
    lb = host_address(host_name("lb1"))
    ssh = {f"{address}:{SSH_PORT}" for address in by_address}  # where sshd runs (the SSH lab, the stack)
    assert {target for target, state in answers.items() if state == "open"} - ssh == {f"{lb}:80", f"{lb}:443"}, answers


def test_the_closed_service_ports_are_refused_at_once_not_left_silent(seen):
    """A reset (the firewall's `reject with tcp reset`, or nothing listening there), so a client fails fast."""
    _, answers = seen
    assert {target: state for target, state in answers.items() if state == "silent"} == {}, answers


def test_the_outsider_gets_in_when_an_app_hosts_firewall_table_is_gone():
    """The negative control: without its table, app1's instance port answers the outsider; the table is
    loaded again from its file, whatever happens."""
    app1 = container(host_name("app1"))
    address = host_address(host_name("app1"))
    app1.check_output("nft delete table inet rollgate_app")
    try:
        answers = outsider_sees({address: [8000]})
    finally:
        app1.check_output("nft -f /etc/nftables.d/rollgate-app.nft")
    assert answers == {f"{address}:8000": "open"}, answers
    assert outsider_sees({address: [8000]}) == {f"{address}:8000": "refused"}


def seen_from(name: str, pairs: list[tuple[str, int]]) -> dict[str, str]:
    """What a stack host sees of addresses and ports (PROBE, run on it)."""
    return json.loads(container(host_name(name)).check_output("python3 -c %s %s", PROBE, json.dumps(pairs)))


def private_pairs() -> list[tuple[str, int]]:
    """The services on the private network that the balancer host has no business with: Redis, PostgreSQL."""
    return [(host_address(host_name("redis1"), private=True), 6379), (host_address(host_name("db1"), private=True), 5432)]


def test_inside_the_private_network_a_host_no_service_lets_in_is_refused():
    """The balancer host is on the private network, but neither Redis nor PostgreSQL lets it in; nor does one
    app host reach another's instances (only the balancers do)."""
    app2 = host_address(host_name("app2"), private=True)
    assert set(seen_from("lb1", private_pairs()).values()) == {"refused"}
    assert set(seen_from("app1", [(app2, 8000), (app2, 8001)]).values()) == {"refused"}


def test_the_balancer_host_gets_in_when_the_database_hosts_firewall_table_is_gone():
    """The negative control of the test above: without its table, PostgreSQL (listening on its private address)
    answers the balancer host; the table is loaded again from its file, whatever happens."""
    db1 = container(host_name("db1"))
    target = private_pairs()[1]
    db1.check_output("nft delete table inet rollgate_postgresql")
    try:
        answers = seen_from("lb1", [target])
    finally:
        db1.check_output("nft -f /etc/nftables.d/rollgate-postgresql.nft")
    assert set(answers.values()) == {"open"}, answers
    assert set(seen_from("lb1", [target]).values()) == {"refused"}
