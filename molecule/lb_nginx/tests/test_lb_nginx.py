"""The lb role with lb_kind=nginx, verified as its clients see it.

Requests go through the balancer's published ports on 127.0.0.1 (HTTP 18180, HTTPS 18543) or from
the app hosts over the scenario network. Behind it, stand-in instances on lbn-app1 and lbn-app2
(ports 8000 and 8001) answer JSON naming the instance and echoing the request headers. The
inventory gives lbn-app1 twice lbn-app2's capacity.
"""

import collections
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

import testlib
from testlib import container as lab_host
from testlib import insecure_tls

HTTP = "http://127.0.0.1:18180"
HTTPS = "https://127.0.0.1:18543"
CONF = "/etc/nginx/nginx.conf"
INSTANCES = {"lbn-app1:8000", "lbn-app1:8001", "lbn-app2:8000", "lbn-app2:8001"}
RESTRICTED_PATHS = ["/health/detailed", "/health/metrics", "/metrics"]


@pytest.fixture(scope="module")
def lb():
    """The balancer host. Not conftest's parametrized `host`: that would make pytest regroup the
    tests, and these run in file order (the drain and broken-config tests come last)."""
    return lab_host("lbn-lb1")


# No proxy from the environment: every request goes to 127.0.0.1 or the lab network.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=insecure_tls()))


def fetch(url: str, headers: dict | None = None):
    """(status, headers, body) of one GET from this machine, whatever the status."""
    return testlib.fetch(OPENER, url, headers=headers, timeout=15)


def fetch_from(container, url: str, headers: dict | None = None) -> dict:
    """One request made inside a scenario container: {status, headers, body}."""
    probe = (
        "import json, urllib.request, urllib.error\n"
        f"request = urllib.request.Request({url!r}, headers={headers or {}!r})\n"
        "try:\n"
        "    response = urllib.request.urlopen(request, timeout=10)\n"
        "except urllib.error.HTTPError as error:\n"
        "    response = error\n"
        "print(json.dumps({'status': response.status, 'headers': dict(response.headers),"
        " 'body': response.read().decode(errors='replace')}))\n"
    )
    return json.loads(container.check_output("python3 -c %s", probe))


def instances_answering(count: int, path: str = "/spread") -> collections.Counter:
    answered = collections.Counter()
    for _ in range(count):
        status, headers, body = fetch(f"{HTTP}{path}")
        assert status == 200, body
        answered[headers["X-Instance"]] += 1
    return answered


def address_of(name: str) -> str:
    return lab_host(name).check_output("hostname -I").split()[0]


def master_pid(lb) -> str:
    return lb.check_output("cat /run/nginx.pid")


def converge(extra_vars: dict) -> subprocess.CompletedProcess:
    """Run the scenario's converge playbook again, as molecule does, with extra variables."""
    playbook = shutil.which("ansible-playbook") or os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run(
        [
            playbook,
            "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]),
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
            "-e", json.dumps(extra_vars),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def undrained():
    """The tests start from the converged state. The drain test near the end leaves lbn-app1_8000
    drained (molecule destroys the scenario next), so a repeated verify converges it back first."""
    if " down;" in lab_host("lbn-lb1").file(CONF).content_string:
        restored = converge({})
        assert restored.returncode == 0, restored.stdout


# --- Backends, weights, proxy headers ------------------------------------------------------------


def test_requests_reach_every_instance():
    assert set(instances_answering(40)) == INSTANCES


def test_weights_in_the_config_follow_the_inventory_capacities(lb):
    """lbn-app1 (capacity 4) has twice the weight of lbn-app2 (capacity 2) on each instance."""
    expected = {}
    for name, weight in (("lbn-app1", 2), ("lbn-app2", 1)):
        address = address_of(name)
        expected.update({f"{address}:8000": weight, f"{address}:8001": weight})
    rendered = {}
    for line in lb.file(CONF).content_string.splitlines():
        words = line.split()
        if words[:1] == ["server"] and "weight=" in line:
            options = dict(word.rstrip(";").split("=", 1) for word in words[2:] if "=" in word)
            rendered[words[1]] = int(options["weight"])
    assert rendered == expected


def test_the_heavier_host_gets_more_of_the_traffic():
    answered = instances_answering(60)
    on_app1 = answered["lbn-app1:8000"] + answered["lbn-app1:8001"]
    on_app2 = answered["lbn-app2:8000"] + answered["lbn-app2:8001"]
    assert on_app1 > on_app2, answered


def test_proxy_headers_reach_the_backend_over_http():
    client = lab_host("lbn-app2")
    client_address = address_of("lbn-app2")
    answer = fetch_from(client, "http://lbn-lb1/echo", {"Host": "shop.example", "X-Forwarded-For": "203.0.113.7"})
    received = json.loads(answer["body"])["headers"]
    assert received["Host"] == "shop.example"
    assert received["X-Real-IP"] == client_address
    # The client's own X-Forwarded-For is kept, and its real address appended last.
    assert received["X-Forwarded-For"] == f"203.0.113.7, {client_address}"
    assert received["X-Forwarded-Proto"] == "http"


def test_proxy_headers_say_https_when_tls_was_terminated():
    status, _, body = fetch(f"{HTTPS}/echo", {"Host": "shop.example"})
    received = json.loads(body)["headers"]
    assert status == 200
    assert received["X-Forwarded-Proto"] == "https"
    assert received["Host"] == "shop.example"
    assert received["X-Forwarded-For"] == received["X-Real-IP"]


def test_keepalive_connections_to_the_backends_are_not_closed_per_request():
    """nginx talks HTTP/1.1 to the backends without passing the client's Connection: close."""
    status, _, body = fetch(f"{HTTP}/echo", {"Connection": "close"})
    assert status == 200
    assert "Connection" not in json.loads(body)["headers"]


# --- TLS -------------------------------------------------------------------------------------------


def test_https_serves_the_certificate_the_role_installed(lb):
    served = ssl.get_server_certificate(("127.0.0.1", 18543))
    installed = lb.file("/etc/ssl/rollgate/lb.crt").content_string
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(installed)


def test_a_renewed_certificate_is_served_after_the_roles_next_run(lb):
    """The role makes a new certificate where the old one was removed; the balancer serves it at the end
    of the same run."""
    testlib.assert_a_renewed_certificate_is_served(lb, 18543, converge)


def handshake(minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> str:
    context = insecure_tls()
    context.minimum_version = minimum
    context.maximum_version = maximum
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", 18543), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version()


def test_https_accepts_tls_1_2():
    assert handshake(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_https_refuses_tls_1_1():
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)


# --- Responses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [HTTP, HTTPS])
def test_security_headers_are_on_every_response(base):
    for path in ("/echo", "/lb-health"):
        _, headers, _ = fetch(f"{base}{path}")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_hsts_is_sent_over_https_only():
    _, over_tls, _ = fetch(f"{HTTPS}/echo")
    _, over_plain, _ = fetch(f"{HTTP}/echo")
    assert over_tls["Strict-Transport-Security"].startswith("max-age=")
    assert over_plain["Strict-Transport-Security"] is None


def test_json_is_gzipped_for_a_client_that_asks():
    status, headers, body = fetch(f"{HTTP}/large", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["path"] == "/large"


def test_json_is_plain_for_a_client_that_does_not_ask():
    _, headers, body = fetch(f"{HTTP}/large")
    assert headers["Content-Encoding"] is None
    assert json.loads(body)["path"] == "/large"


# --- Health and the metrics allowlist --------------------------------------------------------------


def test_the_balancer_answers_its_own_liveness():
    status, headers, body = fetch(f"{HTTP}/lb-health")
    assert (status, body) == (200, b"ok\n")
    assert headers["X-Instance"] is None


def test_the_apps_health_is_passed_to_the_app():
    status, headers, body = fetch(f"{HTTP}/health")
    assert status == 200
    assert headers["X-Instance"] in INSTANCES
    assert json.loads(body)["path"] == "/health"


@pytest.mark.parametrize("path", [*RESTRICTED_PATHS, "/metrics?format=text", "/health//metrics", "/%6detrics"])
def test_metrics_are_refused_outside_the_allowlist(path):
    """lbn-app1's address is not in lb_metrics_allowed_networks, however it spells the path."""
    assert fetch_from(lab_host("lbn-app1"), f"http://lbn-lb1{path}")["status"] == 403


@pytest.mark.parametrize("path", RESTRICTED_PATHS)
def test_metrics_pass_from_the_balancer_host_itself(lb, path):
    answer = fetch_from(lb, f"http://127.0.0.1{path}")
    assert answer["status"] == 200
    assert answer["headers"]["X-Instance"] in INSTANCES


# --- Limits ----------------------------------------------------------------------------------------


RATE_PROBE = """
import collections, http.client, json, threading
statuses = collections.Counter()
lock = threading.Lock()
limited = threading.Event()

def client():
    connection = http.client.HTTPConnection("lbn-lb1", 80, timeout=10)
    for _ in range(300):
        if limited.is_set():
            break
        connection.request("GET", "/burst")
        response = connection.getresponse()
        response.read()
        with lock:
            statuses[response.status] += 1
        if response.status == 429:
            limited.set()
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection("lbn-lb1", 80, timeout=10)

threads = [threading.Thread(target=client) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(statuses))
"""


def test_a_burst_above_the_rate_limit_gets_429():
    """Up to 2400 requests from one address, far more than the 100/s rate and burst of 200."""
    statuses = json.loads(lab_host("lbn-app2").check_output("python3 -c %s", RATE_PROBE))
    assert statuses.get("200", 0) > 0, statuses
    assert statuses.get("429", 0) > 0, statuses


# --- Failures, reloads, broken configs -------------------------------------------------------------


def test_a_dead_backend_fails_no_get_request():
    app1 = lab_host("lbn-app1")
    app1.check_output("systemctl stop stub-backend@8000")
    try:
        answered = instances_answering(30, "/while-one-is-dead")
    finally:
        app1.check_output("systemctl start stub-backend@8000")
    assert "lbn-app1:8000" not in answered
    assert sum(answered.values()) == 30


def test_the_live_config_passes_the_checker(lb):
    assert lb.run("nginx -t").rc == 0


def test_a_reload_lets_requests_in_flight_finish(lb):
    outcome = {}

    def slow_request():
        outcome["status"], _, outcome["body"] = fetch(f"{HTTP}/slow?s=3")

    pid_before = master_pid(lb)
    request = threading.Thread(target=slow_request)
    request.start()
    # The request is with a backend for 3 s; reload while it waits.
    lb.check_output("sleep 1 && systemctl reload nginx")
    request.join(timeout=30)
    assert outcome["status"] == 200, outcome
    assert master_pid(lb) == pid_before


def test_a_drained_backend_gets_no_new_requests_after_a_graceful_reload(lb):
    pid_before = master_pid(lb)
    run = converge({"lb_drained_backends": ["lbn-app1_8000"]})
    assert run.returncode == 0, run.stdout
    assert set(instances_answering(30, "/while-drained")) == INSTANCES - {"lbn-app1:8000"}
    # Reloaded, not restarted: the same master process runs the new config.
    assert master_pid(lb) == pid_before


def test_a_config_nginx_rejects_never_goes_live(lb):
    before = lb.file(CONF).sha256sum
    pid_before = master_pid(lb)
    run = converge({"lb_nginx_extra_config": "this_is_not_a_directive on;"})
    assert run.returncode != 0, run.stdout
    assert "failed to validate" in run.stdout + run.stderr
    assert lb.file(CONF).sha256sum == before
    assert master_pid(lb) == pid_before
    assert lb.run("nginx -t").rc == 0
    assert fetch(f"{HTTP}/lb-health")[0] == 200
    assert fetch(f"{HTTP}/after-a-refused-config")[0] == 200
