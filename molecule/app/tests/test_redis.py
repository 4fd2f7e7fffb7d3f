"""The redis role: the app hosts reach Redis with the password, nothing else reaches it, data persists."""

import pytest
import testinfra

from app_scenario import SCENARIO_VARS, app, assert_stops_before_any_change, other, private_address

PASSWORD = SCENARIO_VARS["redis_requirepass"]

redis_host = testinfra.get_host("podman://ap-redis1")


@pytest.fixture(scope="module")
def redis_address() -> str:
    return private_address("ap-redis1")


def redis_cli(client, address: str, *command: str, password: str | None = PASSWORD, db: int = 0):
    """Run one command with redis-cli on `client`; the password goes through the environment."""
    auth = "REDISCLI_AUTH=%s " if password is not None else ""
    args = ([password] if password is not None else []) + [address, str(db), *command]
    placeholders = " ".join(["%s"] * len(command))
    result = client.run(f"{auth}timeout 10 redis-cli --no-auth-warning -h %s -p 6379 -n %s {placeholders}", *args)
    return result, (result.stdout + result.stderr).strip()


def test_listens_on_loopback_and_private_address_only(redis_address):
    listening = set(redis_host.check_output("ss -Htln 'sport = :6379' | awk '{print $4}'").split())
    assert listening == {"127.0.0.1:6379", f"{redis_address}:6379"}


def test_app_host_with_the_password_gets_pong(redis_address):
    _, output = redis_cli(app, redis_address, "PING")
    assert output == "PONG"


def test_app_host_without_the_password_is_refused(redis_address):
    _, output = redis_cli(app, redis_address, "GET", "anything", password=None)
    assert output.startswith("NOAUTH")


def test_app_host_with_a_wrong_password_is_refused(redis_address):
    _, output = redis_cli(app, redis_address, "PING", password="not-the-password")
    assert "WRONGPASS" in output
    assert "PONG" not in output


def test_host_outside_the_app_group_cannot_connect(redis_address):
    result, output = redis_cli(other, redis_address, "PING")
    # The firewall rejects the connection; a timeout (exit 124) would also mean it never reached Redis.
    assert "Connection refused" in output or result.rc == 124, output
    assert "PONG" not in output and "NOAUTH" not in output


def test_firewall_comes_back_when_nftables_loads_as_at_boot(redis_address):
    redis_host.check_output("systemctl restart nftables")
    _, from_other = redis_cli(other, redis_address, "PING")
    _, from_app = redis_cli(app, redis_address, "PING")
    assert "Connection refused" in from_other
    assert from_app == "PONG"


def test_eviction_spares_keys_without_a_ttl(redis_address):
    _, policy = redis_cli(app, redis_address, "CONFIG", "GET", "maxmemory-policy")
    _, limit = redis_cli(app, redis_address, "CONFIG", "GET", "maxmemory")
    assert policy.splitlines() == ["maxmemory-policy", "volatile-lru"]
    assert limit.splitlines() == ["maxmemory", str(256 * 1024 * 1024)]


@pytest.mark.parametrize("db", [0, 1, 2, 3], ids=["default", "cache", "session", "queue"])
def test_the_app_databases_exist(redis_address, db):
    _, output = redis_cli(app, redis_address, "SET", f"probe:{db}", "1", db=db)
    assert output == "OK"


def test_a_key_survives_a_restart(redis_address):
    _, written = redis_cli(app, redis_address, "SET", "session:restart-probe", "kept", db=2)
    assert written == "OK"
    redis_host.check_output("systemctl restart redis-server")
    _, read = redis_cli(app, redis_address, "GET", "session:restart-probe", db=2)
    assert read == "kept"
    assert redis_host.service("redis-server").is_enabled


def test_missing_password_fails_before_any_change_naming_the_variable():
    assert_stops_before_any_change("missing_redis_secret.yml", "ap-redis1", "redis_requirepass is empty or undefined")
