"""Limits per client, backends that fail, and draining through balancer-manager."""

from collections import Counter

from lb_apache_helpers import (
    INSTANCES, LB, MANAGER, balancer_manager, container, get, instances_answering, run_python, wait_until,
)

# converge.yml: lb_rate_limit_per_second 10 (mod_evasive has no burst), lb_connections_per_client 20.
REQUESTS_PER_SECOND_ALLOWED = 10
CONNECTIONS_ALLOWED = 20

BURST = """
    import http.client, json, sys, time
    connection = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
    codes, sent, deadline = {}, 0, time.monotonic() + 20
    while sent < 3000 and time.monotonic() < deadline:
        connection.request("GET", "/burst")
        response = connection.getresponse()
        response.read()
        sent += 1
        codes[response.status] = codes.get(response.status, 0) + 1
        if response.status == 429:
            break
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
    print(json.dumps({"codes": codes, "sent": sent}))
"""

CONNECTIONS = """
    import json, socket, sys
    opened, refused = [], 0
    for _ in range(int(sys.argv[2])):
        try:
            opened.append(socket.create_connection((sys.argv[1], 80), timeout=5))
        except OSError:
            refused += 1
    print(json.dumps({"open": len(opened), "refused": refused}))
"""


def test_a_burst_above_the_rate_limit_gets_429():
    # One keep-alive connection from an app host, as fast as it goes: the first second's requests
    # beyond the limit are refused.
    result = run_python("lba-app2", BURST, LB)
    codes = {int(code): count for code, count in result["codes"].items()}
    assert codes.get(429) == 1, result
    assert codes.get(200, 0) >= REQUESTS_PER_SECOND_ALLOWED, result


def test_connections_above_the_limit_are_refused():
    attempts = CONNECTIONS_ALLOWED + 5
    result = run_python("lba-app2", CONNECTIONS, LB, str(attempts))
    assert result["open"] <= CONNECTIONS_ALLOWED, result
    assert result["refused"] == attempts - result["open"] >= 5, result


def test_a_backend_failing_readiness_is_taken_out():
    app2 = container("lba-app2")
    app2.check_output("touch /run/stub-backend/8001.down")
    try:
        assert wait_until(lambda: "lba-app2:8001" not in instances_answering(12)), "never taken out"
        answered = Counter(instances_answering(30))
        assert "lba-app2:8001" not in answered
        assert set(answered) == INSTANCES - {"lba-app2:8001"}
    finally:
        app2.check_output("rm -f /run/stub-backend/8001.down")
        assert wait_until(lambda: "lba-app2:8001" in instances_answering(12)), "never came back"


def test_a_dead_backend_costs_no_failed_get():
    app1 = container("lba-app1")
    app1.check_output("systemctl stop stub-backend@8000")
    try:
        replies = [get("/who") for _ in range(40)]
        assert [reply.status for reply in replies] == [200] * 40
        assert "lba-app1:8000" not in {reply.header("X-Instance") for reply in replies}
    finally:
        app1.check_output("systemctl start stub-backend@8000")
        assert wait_until(lambda: "lba-app1:8000" in instances_answering(12)), "never came back"


def _address(name: str) -> str:
    return container(name).check_output("hostname -I").split()[0]


def test_apache2_mod_proxy_sees_every_member():
    result = balancer_manager(f"balancer_vhost={MANAGER}")
    assert not result.get("failed"), result.get("msg")
    members = {(member["host"], int(member["port"])) for member in result["members"]}
    expected = {(_address(name), port) for name in ("lba-app1", "lba-app2") for port in (8000, 8001)}
    assert members == expected


def test_a_drain_through_balancer_manager_applies_to_http_and_https():
    app1 = _address("lba-app1")
    drained = balancer_manager(f"balancer_vhost={MANAGER} member_host={app1} state=drained")
    try:
        assert not drained.get("failed"), drained.get("msg")
        assert drained["member"]["status"]["drained"] is True
        for https in (False, True):
            answered = set(instances_answering(24, https=https))
            assert answered == {"lba-app2:8000", "lba-app2:8001"}, (https, answered)
    finally:
        enabled = balancer_manager(f"balancer_vhost={MANAGER} member_host={app1} state=present")
        assert not enabled.get("failed"), enabled.get("msg")
    assert set(instances_answering(24)) == INSTANCES
