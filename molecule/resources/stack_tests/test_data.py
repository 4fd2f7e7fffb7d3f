"""The database and Redis as the app hosts meet them, and the app's instances as systemd runs them: the checks
of the former `app` scenario (the app role on one host, with the postgresql and redis roles on hosts of their
own) that the other stack tests do not make. The clients are the app host app1 (PostgreSQL through the driver
of the app's own release, since the app hosts have no psql; Redis through testlib.redis_replies) and, for a
host outside the app group, the balancer host lb1. The refusals of a host outside the app group, pg_hba.conf's
second lock, and Redis with and without the password are in test_stack.py and test_firewall.py.

Why once: the postgresql, redis and app roles do not depend on the balancer. The tests that restart PostgreSQL,
Redis or nftables wait, whatever happens, until every instance is ready and served by the balancer again
(testlib.wait_until_served), so the tests after them find the fleet as before; what they write, they remove.
"""

import pytest

from testlib import APP_ROOT, container, group_vars, host_address, host_name, redis_replies, stack, wait_until_served

VARS = group_vars()
APP = host_name("app1")
APP_HOSTS = [host_name("app1"), host_name("app2")]
PORTS = (8000, 8001)
OUTSIDER = host_name("lb1")
DB = host_name("db1")
REDIS = host_name("redis1")
DATABASE = VARS.get("postgresql_app_database", "inventory")
USER = VARS.get("postgresql_app_user", "inventory")
REDIS_AUTH = ["AUTH", VARS["redis_requirepass"]]
# Every app host with the default app_instance_ports [8000, 8001], a pool of 10 each, and 10 reserved: 50 for
# the stack's two app hosts.
EXPECTED_MAX_CONNECTIONS = 10 * len(stack().groups()["app"]) * len(PORTS) + 10
# One statement (argv[2]) on the database of the conninfo argv[1], with psycopg from the app's release: each
# row's first column on a line; an error on stderr, exit status 1.
PSQL = (
    "import sys, psycopg\n"
    "try:\n"
    "    with psycopg.connect(sys.argv[1]) as connection:\n"
    "        cursor = connection.execute(sys.argv[2])\n"
    "        print('\\n'.join(str(row[0]) for row in cursor.fetchall()) if cursor.description else '')\n"
    "except psycopg.Error as error:\n"
    "    sys.exit(str(error))\n"
)


def psql(sql: str, *, database: str = DATABASE, password: str = VARS["postgresql_app_password"]):
    """Run `sql` from the app host against the database host's private address, as the app connects."""
    conninfo = f"host={host_address(DB, private=True)} port=5432 dbname={database} user={USER} connect_timeout=5"
    return container(APP).run(f"PGPASSWORD=%s {APP_ROOT}/current/bin/python -c %s %s %s",
                              password, PSQL, conninfo, sql)


def listening(name: str, port: int) -> set[str]:
    """The addresses (address:port) a host listens on for TCP `port`."""
    return set(container(name).check_output(f"ss -Htln 'sport = :{port}' | awk '{{print $4}}'").split())


# --- The app's instances -------------------------------------------------------------------------------

@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize("name", ["app1", "app2"])
def test_each_instance_runs_enabled_as_the_service_user(name, port):
    host = container(host_name(name))
    service = host.service(f"inventory@{port}")
    assert service.is_running
    assert service.is_enabled
    main_pid = host.check_output(f"systemctl show -p MainPID --value inventory@{port}")
    assert host.check_output(f"ps -o user= -p {main_pid}") == VARS.get("app_user", "inventory")


# --- PostgreSQL: the app hosts reach the app's database, nothing else does, and data persists --------------

def test_postgresql_listens_on_loopback_and_private_address_only():
    assert listening(DB, 5432) == {"127.0.0.1:5432", f"{host_address(DB, private=True)}:5432"}


def test_postgresql_refuses_an_app_host_with_a_wrong_password():
    result = psql("SELECT 1", password="not-the-password")
    assert result.rc != 0
    assert f'password authentication failed for user "{USER}"' in result.stderr, result.stderr


def test_postgresql_lets_an_app_host_reach_only_the_app_database():
    result = psql("SELECT 1", database="postgres")
    assert result.rc != 0
    assert "no pg_hba.conf entry for host" in result.stderr, result.stderr


def test_postgresql_max_connections_fits_the_app_pools():
    result = psql("SHOW max_connections")
    assert result.rc == 0, result.stderr
    assert int(result.stdout) == EXPECTED_MAX_CONNECTIONS


def test_postgresql_data_survives_a_restart():
    """A row written before a restart of the cluster reads back after it; the probe's table is dropped again."""
    db = container(DB)
    written = psql("CREATE TABLE IF NOT EXISTS restart_probe (note text);"
                   "TRUNCATE restart_probe; INSERT INTO restart_probe VALUES ('kept')")
    assert written.rc == 0, written.stderr
    try:
        # The cluster of the host's own release: postgresql@15-main on Debian 12, @17-main on 13.
        version = db.check_output("ls /etc/postgresql")
        db.check_output(f"systemctl restart postgresql@{version}-main")
        read = psql("SELECT note FROM restart_probe")
    finally:
        psql("DROP TABLE IF EXISTS restart_probe")
        wait_until_served(APP_HOSTS, PORTS)
    assert read.rc == 0, read.stderr
    assert read.stdout.strip() == "kept"
    assert db.service("postgresql").is_enabled


# --- Redis: the app hosts reach it with the password, nothing else reaches it, data persists -----------------

def test_redis_listens_on_loopback_and_private_address_only():
    assert listening(REDIS, 6379) == {"127.0.0.1:6379", f"{host_address(REDIS, private=True)}:6379"}


def test_redis_refuses_an_app_host_with_a_wrong_password():
    replies = redis_replies(APP, ["AUTH", "not-the-password"], ["PING"])
    assert replies[0].startswith("-WRONGPASS"), replies
    assert replies[1].startswith("-NOAUTH"), replies


def test_redis_firewall_comes_back_when_nftables_loads_as_at_boot():
    """nftables.service loads its config as at boot: the host outside the app group is refused again (a reset),
    and the app host still gets in."""
    container(REDIS).check_output("systemctl restart nftables")
    try:
        from_outsider = redis_replies(OUTSIDER, ["PING"])
        from_app = redis_replies(APP, REDIS_AUTH, ["PING"])
    finally:
        wait_until_served(APP_HOSTS, PORTS)
    assert from_outsider == ["no connection: ConnectionRefusedError"]
    assert from_app == ["+OK", "+PONG"]


def test_redis_eviction_spares_keys_without_a_ttl():
    replies = redis_replies(APP, REDIS_AUTH, ["CONFIG", "GET", "maxmemory-policy"], ["CONFIG", "GET", "maxmemory"])
    assert replies == ["+OK", ["maxmemory-policy", "volatile-lru"], ["maxmemory", str(256 * 1024 * 1024)]]


@pytest.mark.parametrize("db", [0, 1, 2, 3], ids=["default", "cache", "session", "queue"])
def test_redis_has_the_app_databases(db):
    key = f"rollgate-test:probe:{db}"
    replies = redis_replies(APP, REDIS_AUTH, ["SELECT", str(db)], ["SET", key, "1", "EX", "60"], ["DEL", key])
    assert replies == ["+OK", "+OK", "+OK", 1]


def test_redis_keeps_a_key_across_a_restart():
    """A session key written before a restart of Redis reads back after it; then it is deleted."""
    key = "session:restart-probe"
    assert redis_replies(APP, REDIS_AUTH, ["SELECT", "2"], ["SET", key, "kept"]) == ["+OK", "+OK", "+OK"]
    redis = container(REDIS)
    try:
        redis.check_output("systemctl restart redis-server")
        read = redis_replies(APP, REDIS_AUTH, ["SELECT", "2"], ["GET", key], ["DEL", key])
    finally:
        wait_until_served(APP_HOSTS, PORTS)
    assert read == ["+OK", "+OK", "kept", 1]
    assert redis.service("redis-server").is_enabled
