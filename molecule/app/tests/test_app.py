"""The app role as its users see it, after a converge of 1.0.0 and an upgrade to APP_EXPECTED_VERSION.

Requests are made from inside ap-app1 (python3's urllib) to the instances on 8000 and 8001; the
database and Redis run on ap-db1 and ap-redis1, converged by their own roles.
"""

import json
import os
import textwrap
import uuid

import pytest
import testinfra

from app_scenario import SCENARIO_VARS, run_scenario_playbook

EXPECTED_VERSION = os.environ.get("APP_EXPECTED_VERSION", "1.0.1")
PREVIOUS_VERSION = "1.0.0"
PORTS = (8000, 8001)
ENV_FILE = "/etc/inventory/inventory.env"
ADMIN = {"username": "admin", "password": SCENARIO_VARS["app_admin_password"]}

testinfra_hosts = ["app"]

# Runs inside the app host: one HTTP request per line of JSON on stdin, answers as JSON lines.
# A request may name "cookie_from" (the index of an earlier answer whose session cookie it sends).
CLIENT = textwrap.dedent(
    """
    import json, sys, urllib.error, urllib.request
    answers = []
    for line in sys.stdin:
        call = json.loads(line)
        headers = dict(call.get("headers", {}))
        if "cookie_from" in call:
            headers["Cookie"] = answers[call["cookie_from"]]["cookie"]
        body = None
        if "json" in call:
            body = json.dumps(call["json"]).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(call["url"], data=body, headers=headers, method=call.get("method", "GET"))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), error.headers
        cookie = "; ".join(c.split(";")[0] for c in got.get_all("Set-Cookie") or [])
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        answers.append({"status": status, "json": parsed, "cookie": cookie})
    print(json.dumps(answers))
    """
)


def requests_from(host, *calls: dict) -> list[dict]:
    """Make the calls from inside the host, in order; return their answers."""
    stdin = "\n".join(json.dumps(call) for call in calls)
    command = f"printf '%s\\n' {_quote(stdin)} | python3 -c {_quote(CLIENT)}"
    return json.loads(host.check_output(command))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


@pytest.mark.parametrize("port", PORTS)
def test_each_instance_runs_enabled_as_the_service_user(host, port):
    service = host.service(f"inventory@{port}")
    assert service.is_running
    assert service.is_enabled
    main_pid = host.check_output(f"systemctl show -p MainPID --value inventory@{port}")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "inventory"


@pytest.mark.parametrize("port", PORTS)
def test_each_instance_is_ready_with_the_deployed_version(host, port):
    [answer] = requests_from(host, {"url": url(port, "/health/readiness")})
    assert answer["status"] == 200, answer
    assert answer["json"]["status"] == "ready"
    assert answer["json"]["version"] == EXPECTED_VERSION
    assert answer["json"]["instance"] == f"ap-app1:{port}"


@pytest.mark.parametrize("port", PORTS)
def test_each_instance_reaches_the_database_and_redis(host, port):
    [answer] = requests_from(host, {"url": url(port, "/health")})
    assert answer["status"] == 200, answer
    assert answer["json"]["status"] == "healthy"
    assert answer["json"]["database"]["status"] == "up"
    assert answer["json"]["cache"]["status"] == "up"
    assert answer["json"]["environment"] == "production"


def test_an_item_written_through_one_instance_reads_back_through_the_other(host):
    sku = f"APP-ROLE-{uuid.uuid4().hex[:12]}"
    item = {"sku": sku, "name": "role test", "quantity": 7, "location": "B2", "unit_price": "3.25"}
    login, _ = requests_from(
        host,
        {"url": url(8000, "/auth/login"), "method": "POST", "json": ADMIN},
        {"url": url(8001, "/health/liveness")},
    )
    assert login["status"] == 200, login
    created, = requests_from(
        host,
        {"url": url(8000, "/items"), "method": "POST", "json": item,
         "headers": {"Cookie": login["cookie"], "X-CSRF-Token": login["json"]["csrf_token"]}},
    )
    assert created["status"] == 201, created
    [read_back] = requests_from(host, {"url": url(8001, f"/items/{created['json']['id']}")})
    assert read_back["status"] == 200, read_back
    assert read_back["json"]["sku"] == sku
    assert read_back["json"]["quantity"] == 7


def test_a_session_made_through_one_instance_is_valid_on_the_other(host):
    login, csrf = requests_from(
        host,
        {"url": url(8000, "/auth/login"), "method": "POST", "json": ADMIN},
        {"url": url(8001, "/auth/csrf"), "cookie_from": 0},
    )
    assert csrf["status"] == 200, csrf
    assert csrf["json"]["csrf_token"] == login["json"]["csrf_token"]


def test_a_write_without_a_session_is_refused(host):
    item = {"sku": "NO-SESSION", "name": "x", "quantity": 1, "location": "A1", "unit_price": "1.00"}
    [answer] = requests_from(host, {"url": url(8001, "/items"), "method": "POST", "json": item})
    assert answer["status"] == 401


def test_the_environment_file_is_readable_by_the_service_only(host):
    """ENV_FILE is the link to the running config, one of the configs staged under configs/."""
    link = host.file(ENV_FILE)
    assert link.is_symlink and link.linked_to.startswith("/etc/inventory/configs/"), link.linked_to
    env_file = host.file(link.linked_to)
    assert host.file("/etc/inventory/configs").mode == 0o750
    assert env_file.mode == 0o640
    assert (env_file.user, env_file.group) == ("root", "inventory")
    assert host.run(f"runuser -u nobody -- cat {ENV_FILE}").rc != 0
    assert host.run(f"runuser -u inventory -- cat {ENV_FILE}").rc == 0


def env_quoted(value: str) -> str:
    """A value as systemd reads it from an environment file: double quotes, \\ \" \$ \` escaped."""
    for char in ("\\", '"', "$", "`"):
        value = value.replace(char, "\\" + char)
    return f'"{value}"'


def test_the_environment_file_carries_the_secrets_the_service_needs(host):
    """The passwords hold quotes, a backslash and spaces (scenario_vars.yml): escaped for systemd, which
    the instances' readiness (Redis and PostgreSQL reached with them) proves it reads back intact."""
    content = host.file(ENV_FILE).content_string
    assert f"REDIS_PASSWORD={env_quoted(SCENARIO_VARS['redis_requirepass'])}" in content.splitlines()
    assert f"DB_PASSWORD={env_quoted(SCENARIO_VARS['postgresql_app_password'])}" in content.splitlines()


def test_the_previous_release_is_kept_runnable_for_a_rollback(host):
    previous = host.run(f"/opt/inventory/releases/{PREVIOUS_VERSION}/bin/inventory-service --version")
    assert previous.rc == 0, previous.stderr
    assert previous.stdout.split() == ["inventory-service", PREVIOUS_VERSION]
    assert host.file("/opt/inventory/current").linked_to == f"/opt/inventory/releases/{EXPECTED_VERSION}"


def test_a_version_that_was_never_built_fails_before_any_host_changes(host):
    """app_build_from_source: false and a version without a wheelhouse: the run fails on the controller."""
    result, output, recap = run_scenario_playbook("deploy_unbuilt_version.yml")
    output = " ".join(output.split())
    assert result.returncode != 0
    assert "app_version 9.9.9 does not exist on the controller" in output
    assert recap and all(changed == 0 for changed, _ in recap.values()), recap
    assert host.file("/opt/inventory/current").linked_to == f"/opt/inventory/releases/{EXPECTED_VERSION}"
    assert not host.file("/opt/inventory/releases/9.9.9").exists
