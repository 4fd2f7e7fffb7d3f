"""What a client of the Apache balancer sees: every instance by weight, the proxy headers, TLS,
security headers, compression, the balancer's own /lb-health and the metrics allowlist."""

import re
import socket
import ssl
import warnings
from collections import Counter

import pytest

import testlib
from lb_apache_helpers import (
    HTTPS_PORT, INSTANCES, LB, SITE, container, converge, fetch_inside, get, insecure_context, instances_answering,
)

# The balancer host by name: molecule/conftest.py resolves only host names in molecule's inventory.
testinfra_hosts = ["lba-lb1"]

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}
METRICS_PATHS = ["/health/detailed", "/health/metrics", "/metrics"]


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_requests_reach_every_instance_by_weight(https):
    # lba-app2 has twice lba-app1's capacity (converge.yml), so each of its instances weighs 2.
    answered = Counter(instances_answering(60, https=https))
    assert set(answered) == INSTANCES
    for heavy in ("lba-app2:8000", "lba-app2:8001"):
        for light in ("lba-app1:8000", "lba-app1:8001"):
            assert answered[heavy] > answered[light], answered


def test_weights_are_rendered_as_computed(host):
    routes = dict(re.findall(r"route=(\S+) loadfactor=(\d+)", host.file(SITE).content_string))
    assert routes == {"lba-app1_8000": "1", "lba-app1_8001": "1", "lba-app2_8000": "2", "lba-app2_8001": "2"}


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_proxy_headers_reach_the_backend(https):
    reply = get("/echo", https=https, headers={"Host": "shop.example"})
    received = {name.lower(): value for name, value in reply.json()["headers"].items()}
    assert received["host"] == "shop.example"
    assert received["x-forwarded-proto"] == ("https" if https else "http")
    client = received["x-forwarded-for"].split(",")[-1].strip()
    assert client
    assert received["x-real-ip"] == client


def test_a_forged_real_ip_is_replaced():
    reply = get("/echo", headers={"X-Real-IP": "203.0.113.9", "X-Forwarded-Proto": "https"})
    received = {name.lower(): value for name, value in reply.json()["headers"].items()}
    assert received["x-real-ip"] != "203.0.113.9"
    assert received["x-forwarded-proto"] == "http"


def test_https_answers_with_the_roles_certificate(host):
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw:
        with insecure_context().wrap_socket(raw) as tls:
            served = tls.getpeercert(binary_form=True)
    installed = ssl.PEM_cert_to_DER_cert(host.file("/etc/ssl/rollgate/lb.crt").content_string)
    assert served == installed


def test_a_renewed_certificate_is_served_after_the_roles_next_run(host):
    """The role makes a new certificate where the old one was removed; the balancer serves it at the end
    of the same run."""
    testlib.assert_a_renewed_certificate_is_served(host, HTTPS_PORT, converge)


def _handshake(version: ssl.TLSVersion) -> str:
    context = insecure_context()
    # Let the client offer old protocols, so that refusing them is the server's doing.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version()


def test_tls_1_1_is_refused_by_the_server():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        _handshake(version)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"])
def test_tls_1_2_and_1_3_are_accepted(version):
    assert _handshake(version) in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("path", ["/who", "/lb-health", "/health/metrics"], ids=["proxied", "own", "refused"])
def test_security_headers_are_on_every_answer(path):
    reply = get(path, https=True)
    for name, value in SECURITY_HEADERS.items():
        assert reply.header(name) == value, (path, name)


def test_json_is_compressed_when_the_client_accepts_gzip():
    reply = get("/large", headers={"Accept-Encoding": "gzip"})
    assert reply.header("Content-Encoding") == "gzip"
    assert reply.json()["path"] == "/large"


def test_json_is_plain_when_the_client_does_not_accept_gzip():
    reply = get("/large")
    assert reply.header("Content-Encoding") is None
    assert reply.json()["path"] == "/large"


def test_lb_health_is_answered_by_apache_itself():
    reply = get("/lb-health")
    assert reply.status == 200
    assert reply.body == b"ok\n"
    assert reply.header("X-Instance") is None


def test_the_apps_health_goes_to_the_app():
    reply = get("/health")
    assert reply.status == 200
    assert reply.header("X-Instance") in INSTANCES
    assert reply.json()["path"] == "/health"


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_are_forbidden_from_an_app_host(path):
    reply = fetch_inside("lba-app1", f"http://{LB}{path}")
    assert reply.status == 403
    assert reply.header("X-Instance") is None


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_are_forbidden_through_the_published_port(path):
    assert get(path).status == 403


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_pass_from_the_balancer_host(path):
    reply = fetch_inside(LB, f"http://127.0.0.1{path}")
    assert reply.status == 200
    assert reply.header("X-Instance") in INSTANCES


def test_balancer_manager_is_not_reachable_from_another_host():
    script_host = container("lba-app1")
    probe = script_host.run(
        f"python3 -c \"import socket; socket.create_connection(('{LB}', 8081), timeout=5)\""
    )
    assert probe.rc != 0
    assert "Connection refused" in probe.stderr
