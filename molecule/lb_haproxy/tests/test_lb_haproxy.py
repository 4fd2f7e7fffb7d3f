"""The lb role with lb_kind=haproxy, verified as a user and an operator see it.

Clients: this machine through the published ports (127.0.0.1:18280 -> 80, 127.0.0.1:18643 -> 443),
the balancer host itself (127.0.0.1, in the metrics allowlist), and the app hosts (other client
addresses: outside the allowlist, and each with its own rate and connection counters).
The last tests converge the role again, so they run last.
"""

import collections
import gzip
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import testlib
from testlib import container as lab_host
from testlib import insecure_tls

HTTP = "http://127.0.0.1:18280"
HTTPS = "https://127.0.0.1:18643"
ADMIN_SOCKET = "/run/haproxy/admin.sock"
BACKEND = "app"
CONFIG = "/etc/haproxy/haproxy.cfg"
# converge.yml: 10 requests per second plus a burst of 20 over HAProxy's 10 s window; 20 connections.
# The other tests send fewer requests than that per 10 s from this machine.
RATE_LIMIT_WINDOW_REQUESTS = 10 * 10 + 20
CONNECTIONS_PER_CLIENT = 20
# molecule.yml: app_capacity 2 on app1 and 4 on app2, split over two instances each.
EXPECTED_WEIGHTS = {"lbh-app1_8000": 1, "lbh-app1_8001": 1, "lbh-app2_8000": 2, "lbh-app2_8001": 2}
# HAProxy's srv_admin_state bits (show servers state): forced maintenance and forced drain.
ADMIN_FORCED_MAINT = 0x01
ADMIN_FORCED_DRAIN = 0x08

testinfra_hosts = ["lbh-lb1"]

# No proxy from the environment: every request goes to 127.0.0.1 or the lab network.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=insecure_tls()))


def fetch(url: str, headers: dict | None = None):
    """(status, headers, body) of one GET from this machine, whatever the status."""
    return testlib.fetch(OPENER, url, headers=headers, timeout=15)


def instances_answering(count: int, path: str = "/") -> collections.Counter:
    answered = collections.Counter()
    for _ in range(count):
        status, headers, body = fetch(f"{HTTP}{path}")
        assert status == 200, body
        answered[headers["X-Instance"]] += 1
    return answered


def run_python(host, program: str) -> str:
    return host.check_output(f"python3 -c {shlex.quote(program)}")


def admin(host, command: str) -> str:
    """Run a command on HAProxy's admin socket, from the balancer host."""
    return host.check_output(f"echo {shlex.quote(command)} | socat -t 5 stdio UNIX-CONNECT:{ADMIN_SOCKET}")


def servers_state(host) -> dict[str, dict[str, str]]:
    """`show servers state` of the app backend, by server name."""
    lines = admin(host, f"show servers state {BACKEND}").splitlines()
    fields = lines[1].lstrip("# ").split()
    rows = [dict(zip(fields, line.split())) for line in lines[2:] if line.strip()]
    return {row["srv_name"]: row for row in rows}


def server_stats(host, server: str) -> dict[str, str]:
    """One server's row of `show stat` (status, retries, redispatches...)."""
    lines = admin(host, "show stat").splitlines()
    fields = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(fields, line.split(",")))
        if row.get("pxname") == BACKEND and row.get("svname") == server:
            return row
    raise AssertionError(f"no server {server} in show stat")


def wait_for_status(host, server: str, wanted: str, seconds: int = 30) -> None:
    """Wait (bounded) until the health checks have moved the server to the wanted status."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server_stats(host, server)["status"].startswith(wanted):
            return
        time.sleep(0.5)
    raise AssertionError(f"{server} is {server_stats(host, server)['status']}, not {wanted}, after {seconds} s")


def worker_pid(host) -> str:
    return re.search(r"^Pid: (\d+)$", admin(host, "show info"), re.MULTILINE).group(1)


def ansible_command(name: str) -> str:
    return shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)


def inventory() -> str:
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")


def community_haproxy(args: str) -> dict:
    """Run community.general.haproxy on the balancer host, as the rolling deploy will."""
    result = subprocess.run(
        [ansible_command("ansible"), "lbh-lb1", "-i", inventory(), "-m", "community.general.haproxy",
         "-a", f"socket={ADMIN_SOCKET} backend={BACKEND} wait=true {args}", "-o"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def converge(extra_vars: dict) -> subprocess.CompletedProcess:
    """Converge the scenario again with extra variables."""
    playbook = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
    return subprocess.run(
        [ansible_command("ansible-playbook"), "-i", inventory(), playbook, "-e", json.dumps(extra_vars)],
        capture_output=True, text=True, timeout=600,
    )


# --------------------------------------------------------------------------------------------------
# Balancing and health checks
# --------------------------------------------------------------------------------------------------


def test_requests_reach_every_instance_in_proportion_to_its_weight():
    answered = instances_answering(30)
    assert set(answered) == {"lbh-app1:8000", "lbh-app1:8001", "lbh-app2:8000", "lbh-app2:8001"}, answered
    for small in ("lbh-app1:8000", "lbh-app1:8001"):
        for large in ("lbh-app2:8000", "lbh-app2:8001"):
            assert answered[large] > answered[small], answered


def test_the_live_servers_carry_the_computed_weights(host):
    config = host.file(CONFIG).content_string
    for name, weight in EXPECTED_WEIGHTS.items():
        assert re.search(rf"^\s*server {name} \S+ weight {weight} check inter 2s rise 2 fall 2\b", config, re.M), name
    live = {name: int(row["srv_iweight"]) for name, row in servers_state(host).items()}
    assert live == EXPECTED_WEIGHTS


def test_a_backend_whose_readiness_fails_is_taken_out(host):
    app2 = lab_host("lbh-app2")
    app2.check_output("touch /run/stub-backend/8001.down")
    try:
        wait_for_status(host, "lbh-app2_8001", "DOWN")
        answered = instances_answering(20)
        assert "lbh-app2:8001" not in answered, answered
    finally:
        app2.check_output("rm -f /run/stub-backend/8001.down")
        wait_for_status(host, "lbh-app2_8001", "UP")


def test_get_requests_are_retried_on_another_backend_when_one_dies(host):
    """Between an instance's death and the health checks noticing, GETs go to another instance, and
    the failed connections alone mark the server down (observe layer4, lb_passive_max_fails in a row).

    Health checks on the dead instance are paused, so only those failed connections can take it out.
    """
    app1 = lab_host("lbh-app1")
    admin(host, f"disable health {BACKEND}/lbh-app1_8000")
    app1.check_output("systemctl stop stub-backend@8000")
    try:
        redispatched_before = int(server_stats(host, "lbh-app1_8000")["wredis"])
        answered = instances_answering(30)
        assert "lbh-app1:8000" not in answered, answered
        # The first requests sent to it were retried on another instance (redispatched); then the failed
        # connections marked it down, with its checks still paused.
        assert int(server_stats(host, "lbh-app1_8000")["wredis"]) > redispatched_before
        assert server_stats(host, "lbh-app1_8000")["status"].startswith("DOWN")
    finally:
        app1.check_output("systemctl start stub-backend@8000")
        admin(host, f"enable health {BACKEND}/lbh-app1_8000")
        wait_for_status(host, "lbh-app1_8000", "UP")


# --------------------------------------------------------------------------------------------------
# What the backends receive, what clients receive
# --------------------------------------------------------------------------------------------------


def test_proxy_headers_reach_the_backend_over_https():
    status, _, body = fetch(f"{HTTPS}/echo", headers={"X-Real-IP": "203.0.113.9"})
    assert status == 200
    received = {name.lower(): value for name, value in json.loads(body)["headers"].items()}
    assert received["host"] == "127.0.0.1:18643"
    assert received["x-forwarded-proto"] == "https"
    # The client's address as the balancer saw it, not what the client claimed.
    assert received["x-real-ip"] != "203.0.113.9"
    assert received["x-forwarded-for"] == received["x-real-ip"]


def test_plain_http_is_forwarded_as_http():
    _, _, body = fetch(f"{HTTP}/echo")
    received = {name.lower(): value for name, value in json.loads(body)["headers"].items()}
    assert received["x-forwarded-proto"] == "http"


def test_https_serves_the_certificate_the_role_installed(host):
    served = ssl.get_server_certificate(("127.0.0.1", 18643))
    installed = host.file("/etc/ssl/rollgate/lb.crt").content_string
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(installed)


def test_a_renewed_certificate_is_served_after_the_roles_next_run(host):
    """The role makes a new certificate where the old one was removed; the balancer serves it at the end
    of the same run."""
    testlib.assert_a_renewed_certificate_is_served(host, 18643, converge)


def test_https_refuses_tls_1_1():
    context = insecure_tls()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with context.wrap_socket(socket.create_connection(("127.0.0.1", 18643), timeout=5)):
            pass


def test_https_accepts_tls_1_2():
    context = insecure_tls()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with context.wrap_socket(socket.create_connection(("127.0.0.1", 18643), timeout=5)) as tls:
        assert tls.version() == "TLSv1.2"


@pytest.mark.parametrize("path", ["/", "/lb-health"])
def test_security_headers_are_on_app_and_balancer_responses(path):
    _, headers, _ = fetch(f"{HTTP}{path}")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_json_is_gzipped_for_clients_that_accept_it():
    status, headers, body = fetch(f"{HTTP}/large", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(body))["filler"]) == 2048


def test_json_is_plain_for_clients_that_do_not_accept_gzip():
    _, headers, body = fetch(f"{HTTP}/large")
    assert headers["Content-Encoding"] is None
    assert json.loads(body)["path"] == "/large"


def test_the_balancer_answers_its_own_liveness():
    status, headers, body = fetch(f"{HTTP}/lb-health")
    assert status == 200
    assert body.strip() == b"ok"
    assert headers["X-Instance"] is None


def test_the_apps_health_passes_through_to_the_app():
    status, headers, body = fetch(f"{HTTP}/health")
    assert status == 200
    assert headers["X-Instance"]
    assert json.loads(body)["path"] == "/health"


# --------------------------------------------------------------------------------------------------
# What the balancer refuses
# --------------------------------------------------------------------------------------------------


def test_metrics_and_detailed_health_are_refused_outside_the_allowlist():
    paths = ["/health/metrics", "/metrics", "/health/detailed", "//health//metrics", "/health/%6Detrics"]
    probe = (
        "import urllib.request, urllib.error\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://lbh-lb1' + path, timeout=5).status)\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(e.code)\n"
    )
    assert run_python(lab_host("lbh-app1"), probe).split() == ["403"] * len(paths)


def test_metrics_answer_on_the_balancer_host_itself(host):
    probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1/health/metrics', timeout=5).status)"
    assert run_python(host, probe) == "200"


def test_a_burst_above_the_rate_limit_gets_429():
    """One client (app2) sends more requests than the 10 s window allows, on a keep-alive connection;
    another client (this machine) is still served."""
    probe = (
        "import http.client, time\n"
        "statuses = []\n"
        "connection = http.client.HTTPConnection('lbh-lb1', 80, timeout=5)\n"
        "deadline = time.monotonic() + 30\n"
        f"while len(statuses) < {2 * RATE_LIMIT_WINDOW_REQUESTS} and 429 not in statuses and time.monotonic() < deadline:\n"
        "    connection.request('GET', '/')\n"
        "    response = connection.getresponse()\n"
        "    response.read()\n"
        "    statuses.append(response.status)\n"
        "    if response.will_close:\n"
        "        connection.close()\n"
        "        connection = http.client.HTTPConnection('lbh-lb1', 80, timeout=5)\n"
        "print(' '.join(map(str, statuses)))\n"
    )
    statuses = [int(status) for status in run_python(lab_host("lbh-app2"), probe).split()]
    assert statuses[0] == 200
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} requests"
    assert set(statuses) == {200, 429}
    assert fetch(f"{HTTP}/")[0] == 200


def test_connections_above_the_per_client_limit_are_refused():
    """One client (app1) opens more connections than allowed and keeps them open: the extra ones are
    reset, and only the allowed number is answered."""
    probe = (
        "import socket\n"
        "connections = []\n"
        f"for _ in range({CONNECTIONS_PER_CLIENT + 5}):\n"
        "    try:\n"
        "        connections.append(socket.create_connection(('lbh-lb1', 80), timeout=5))\n"
        "    except OSError:\n"
        "        pass\n"
        "answered = 0\n"
        "for connection in connections:\n"
        "    try:\n"
        "        connection.sendall(b'GET /lb-health HTTP/1.1\\r\\nHost: lbh-lb1\\r\\n\\r\\n')\n"
        "        answered += connection.recv(64).startswith(b'HTTP/1.1 200')\n"
        "    except OSError:\n"
        "        pass\n"
        "print(answered)\n"
    )
    assert run_python(lab_host("lbh-app1"), probe) == str(CONNECTIONS_PER_CLIENT)


def test_the_statistics_page_answers_on_the_balancer_host_only(host):
    probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8404/', timeout=5).status)"
    assert run_python(host, probe) == "200"
    outside = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('lbh-lb1', 8404), timeout=5)\n"
        "    print('open')\n"
        "except OSError:\n"
        "    print('refused')\n"
    )
    assert run_python(lab_host("lbh-app1"), outside) == "refused"


def test_haproxy_listens_on_the_public_ports_and_the_local_statistics_port_only(host):
    """The admin socket is a UNIX socket on the host: nothing else of HAProxy's is on the network."""
    assert host.file(ADMIN_SOCKET).is_socket
    assert "Pid:" in admin(host, "show info")
    listening = {
        line.split()[3] for line in host.check_output("ss -Htlnp").splitlines() if '"haproxy"' in line
    }
    assert listening == {"0.0.0.0:80", "0.0.0.0:443", "127.0.0.1:8404"}


def test_the_live_config_passes_its_checker(host):
    assert host.run(f"haproxy -c -f {CONFIG}").rc == 0


def test_a_reload_keeps_serving_and_lets_requests_in_flight_finish(host):
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(status=fetch(f"{HTTP}/slow?s=4")[0]))
    thread.start()
    deadline = time.monotonic() + 10
    while int(server_stats(host, "BACKEND")["scur"]) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(server_stats(host, "BACKEND")["scur"]) > 0, "the slow request never reached a backend"
    pid_before = worker_pid(host)

    host.check_output("systemctl reload haproxy")
    statuses = [fetch(f"{HTTP}/")[0] for _ in range(10)]
    thread.join(timeout=30)

    assert statuses == [200] * 10
    assert slow == {"status": 200}
    assert worker_pid(host) != pid_before


# --------------------------------------------------------------------------------------------------
# Runtime drain with community.general.haproxy, reloads (these converge again: keep them last)
# --------------------------------------------------------------------------------------------------


def test_community_general_haproxy_drains_a_server_and_a_reload_keeps_it_drained(host):
    community_haproxy("host=lbh-app1_8001 state=drain")
    try:
        assert int(servers_state(host)["lbh-app1_8001"]["srv_admin_state"]) & ADMIN_FORCED_DRAIN
        assert "lbh-app1:8001" not in instances_answering(20)

        pid_before = worker_pid(host)
        # A harmless change: the role's handler saves the runtime state, checks and reloads.
        result = converge({"lb_haproxy_extra_config": "# reload test: a harmless change"})
        assert result.returncode == 0, result.stdout[-3000:]
        assert "# reload test" in host.file(CONFIG).content_string
        assert worker_pid(host) != pid_before

        assert int(servers_state(host)["lbh-app1_8001"]["srv_admin_state"]) & ADMIN_FORCED_DRAIN
        assert "lbh-app1:8001" not in instances_answering(20)
    finally:
        community_haproxy("host=lbh-app1_8001 state=enabled weight=3")

    state = servers_state(host)["lbh-app1_8001"]
    assert int(state["srv_admin_state"]) & (ADMIN_FORCED_DRAIN | ADMIN_FORCED_MAINT) == 0
    assert state["srv_uweight"] == "3"
    assert "lbh-app1:8001" in instances_answering(20)
    admin(host, f"set weight {BACKEND}/lbh-app1_8001 {EXPECTED_WEIGHTS['lbh-app1_8001']}")


def test_a_config_the_checker_rejects_never_goes_live(host):
    config_before = host.file(CONFIG).sha256sum
    pid_before = worker_pid(host)

    result = converge({"lb_haproxy_extra_config": "this-is-not-a-haproxy-directive on"})

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Write haproxy.cfg" in output and "this-is-not-a-haproxy-directive" in output
    assert host.file(CONFIG).sha256sum == config_before
    assert "this-is-not-a-haproxy-directive" not in host.file(CONFIG).content_string
    assert worker_pid(host) == pid_before
    assert fetch(f"{HTTP}/lb-health")[0] == 200
    assert fetch(f"{HTTP}/")[0] == 200
