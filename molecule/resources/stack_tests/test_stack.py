"""A whole stack (site.yml) verified as a user sees it: through the balancer on 127.0.0.1.

Why per kind and why once: what goes through the balancer (every instance reached, sessions across
instances, a write read back, the certificate, the health contract, the balancer's own liveness, its
config checker, the headers) runs per balancer; the app's CSRF refusal and the Redis and PostgreSQL
refusals do not touch the balancer and run once.

testlib.stack() names the stack: the molecule `stack` scenario's (STACK_HTTP_PORT / STACK_HTTPS_PORT
its published ports, container names st-<host>) or the running lab's (make lab-test).
"""

import http.cookiejar
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from testlib import (container, fetch, group_vars, host_address, host_name, insecure_tls, live_weights, redis_replies,
                     run_playbook, stack)

HTTP_PORT = stack().http_port
HTTPS_PORT = stack().https_port
VARS = group_vars()
ADMIN = {"username": VARS.get("app_admin_username", "admin"), "password": VARS["app_admin_password"]}
CHECKERS = {
    "nginx": "nginx -t",
    "haproxy": "haproxy -c -f /etc/haproxy/haproxy.cfg",
    "apache": "apache2ctl configtest",
}

# The checks below name their hosts themselves.
testinfra_hosts = [host_name("lb1")]


def lab_host(name: str):
    return container(host_name(name))


@pytest.fixture(scope="module")
def https_session():
    """A logged-in client through the balancer's HTTPS port (the session cookie is Secure)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=insecure_tls()), urllib.request.HTTPCookieProcessor(jar)
    )
    status, _, body = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/auth/login", ADMIN)
    assert status == 200, body
    return opener, json.loads(body)["csrf_token"]


def test_requests_reach_every_instance(balancer):
    opener = urllib.request.build_opener()
    instances = set()
    for _ in range(60):
        status, headers, _ = fetch(opener, f"http://127.0.0.1:{HTTP_PORT}/health/readiness")
        assert status == 200
        instances.add(headers["X-Instance"])
    ports = sorted(instance.rsplit(":", 1)[1] for instance in instances)
    assert len(instances) == 4, instances
    assert ports == ["8000", "8000", "8001", "8001"]


def test_a_session_made_through_one_instance_works_through_the_others(balancer, https_session):
    opener, csrf_token = https_session
    served_by = set()
    for _ in range(20):
        status, headers, body = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/auth/csrf")
        assert status == 200, body
        assert json.loads(body)["csrf_token"] == csrf_token
        served_by.add(headers["X-Instance"])
    assert len(served_by) >= 2, served_by


def test_a_write_through_the_balancer_reads_back_from_every_instance(balancer, https_session):
    opener, csrf_token = https_session
    sku = f"STACK-{balancer.kind}-{os.getpid()}"
    item = {"sku": sku, "name": "stack test", "quantity": 5, "location": "A1", "unit_price": "2.50"}
    status, _, body = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/items", item, {"X-CSRF-Token": csrf_token})
    assert status == 201, body
    item_id = json.loads(body)["id"]
    for _ in range(8):
        status, _, body = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/items/{item_id}")
        assert status == 200 and json.loads(body)["sku"] == sku


def test_a_write_without_the_csrf_token_is_refused(https_session):
    opener, _ = https_session
    item = {"sku": "NO-CSRF", "name": "x", "quantity": 1, "location": "A1", "unit_price": "1.00"}
    status, _, _ = fetch(opener, f"https://127.0.0.1:{HTTPS_PORT}/items", item)
    assert status == 403


def test_https_serves_the_certificate_the_role_installed(balancer, host):
    served = ssl.get_server_certificate(("127.0.0.1", HTTPS_PORT))
    installed = host.file("/etc/ssl/rollgate/lb.crt").content_string
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(installed)


def test_health_answers_through_the_balancer_with_the_app_contract(balancer):
    status, _, body = fetch(urllib.request.build_opener(), f"http://127.0.0.1:{HTTP_PORT}/health")
    health = json.loads(body)
    assert status == 200
    assert health["status"] == "healthy"
    assert health["database"]["status"] == "up" and health["cache"]["status"] == "up"


def test_the_balancer_answers_its_own_liveness(balancer):
    status, _, _ = fetch(urllib.request.build_opener(), f"http://127.0.0.1:{HTTP_PORT}/lb-health")
    assert status == 200


def test_the_live_balancer_config_passes_its_checker(balancer, host):
    assert host.run(CHECKERS[balancer.kind]).rc == 0


# make status's row: instance (st-app1_8000 in the molecule stack), version, ready, lb weight, lb state, ...
STATUS_ROW = re.compile(r"(?P<name>[\w.-]*app\d+_\d+)\s+(?P<version>\S+)\s+yes\s+(?P<weight>\S+)\s+(?P<state>.+?)\s{2,}")


def test_make_status_shows_each_instance_at_the_weight_the_balancer_serves_it(balancer):
    """playbooks/status.yml (make status) reads the running balancer through the lb role's entry point
    status: every instance ready, in rotation, at the weight the balancer itself reports (read apart,
    through the balancer's own interface or, for nginx, by the share of requests each instance gets)."""
    result = run_playbook("playbooks/status.yml", {})
    assert result.returncode == 0, result.stdout[-3000:]
    rows = {row["name"]: row for row in STATUS_ROW.finditer(result.stdout)}
    assert len(rows) == 4, result.stdout[-3000:]
    assert not any("not in the balancer" in row["state"] or "drain" in row["state"].lower() for row in rows.values()), rows
    assert {name: round(float(row["weight"])) for name, row in rows.items()} == live_weights(balancer.kind)


def test_make_status_shows_a_drained_instance_as_drained(balancer):
    """The lb role's drain entry point (the rolling deploy's) takes one instance out of the running balancer:
    make status shows it drained, as the balancer itself reports it, and no other; then it goes back."""
    drained = f"{host_name('app1')}_8000"
    runtime = "molecule/resources/lb_runtime.yml"
    result = run_playbook(runtime, {"lb_runtime_action": "drain", "lb_runtime_backends": [drained]})
    try:
        assert result.returncode == 0, result.stdout[-3000:]
        status = run_playbook("playbooks/status.yml", {})
        assert status.returncode == 0, status.stdout[-3000:]
        rows = {row["name"]: row["state"] for row in STATUS_ROW.finditer(status.stdout)}
        assert len(rows) == 4, status.stdout[-3000:]
        assert rows[drained].startswith("drained"), rows
        assert all(state.startswith("in rotation") for name, state in rows.items() if name != drained), rows
    finally:
        restored = run_playbook(runtime, {"lb_runtime_action": "restore", "lb_runtime_backends": [drained]})
        assert restored.returncode == 0, restored.stdout[-3000:]


def test_make_status_does_not_take_an_nginx_config_that_nginx_has_not_loaded_for_its_view(balancer):
    """nginx's view is its config file (open-source nginx has no runtime API): a file written after the last
    successful reload is not what nginx serves, so make status says the view is unknown, and why."""
    if balancer.kind != "nginx":
        pytest.skip("only nginx's view is read from its config file")
    lb = lab_host("lb1")
    # A write one second and more after the workers started (the view allows /proc's 1 s of slack).
    lb.check_output("sleep 1.5 && touch /etc/nginx/nginx.conf")
    try:
        status = run_playbook("playbooks/status.yml", {})
        assert status.returncode == 0, status.stdout[-3000:]
        # lb1's table only: with a pair, the other balancer's view is its own, and true.
        table = status.stdout.split(f"balancer {host_name('lb1')} ")[-1].split("balancer ")[0]
        said = " ".join(table.split())
        assert "view is unknown: its config file changed after its last successful reload" in said, said[-3000:]
        rows = {row["name"]: (row["weight"], row["state"]) for row in STATUS_ROW.finditer(table)}
        assert len(rows) == 4 and set(rows.values()) == {("?", "unknown")}, rows
    finally:
        lb.check_output("systemctl reload nginx")


def test_security_headers_are_on_every_response(balancer):
    _, headers, _ = fetch(urllib.request.build_opener(), f"http://127.0.0.1:{HTTP_PORT}/health/liveness")
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert "X-Frame-Options" in headers


def test_redis_refuses_an_app_host_without_the_password():
    [reply] = redis_replies(host_name("app1"), ["PING"])
    assert reply.startswith("-NOAUTH")


def test_redis_answers_an_app_host_with_the_password():
    assert redis_replies(host_name("app1"), ["AUTH", VARS["redis_requirepass"]], ["PING"]) == ["+OK", "+PONG"]


def test_redis_refuses_a_host_outside_the_app_group():
    """Refused by the firewall (a reset), not for a name that does not resolve or a timeout."""
    assert redis_replies(host_name("lb1"), ["PING"]) == ["no connection: ConnectionRefusedError"]


def test_postgresql_refuses_a_host_that_is_not_an_app_host():
    """This machine reaches the database host over the lab network, but it is no app host: the host firewall
    resets the connection before PostgreSQL sees it."""
    result = subprocess.run(
        ["psql", f"host={host_address(host_name('db1'))} user=inventory dbname=inventory "
                 f"password={VARS['postgresql_app_password']} connect_timeout=5",
         "-c", "select 1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "Connection refused" in result.stderr, result.stderr


def test_pg_hba_refuses_an_address_the_firewall_lets_through_that_is_no_app_host():
    """The second lock: the database host connecting to its own private address passes the firewall (loopback),
    and pg_hba.conf, which names the app hosts alone, refuses it."""
    db = host_name("db1")
    result = container(db).run(
        "psql %s -c 'select 1'",
        f"host={host_address(db, private=True)} user=inventory dbname=inventory "
        f"password={VARS['postgresql_app_password']} connect_timeout=5")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr, result.stderr
