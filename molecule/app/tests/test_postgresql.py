"""The postgresql role: the app hosts reach the app's database, nothing else does, and data persists."""

import pytest
import testinfra

from app_scenario import SCENARIO_VARS, app, assert_stops_before_any_change, other, private_address

PASSWORD = SCENARIO_VARS["postgresql_app_password"]
# One app host with the default app_instance_ports [8000, 8001]: 10 x 2 + 10 reserved.
EXPECTED_MAX_CONNECTIONS = 30

db = testinfra.get_host("podman://ap-db1")


@pytest.fixture(scope="module")
def db_address() -> str:
    return private_address("ap-db1")


def psql(client, address: str, sql: str, *, database: str = "inventory", user: str = "inventory",
         password: str = PASSWORD):
    """Run one statement with psql on `client` against the database host, as a client app would."""
    conninfo = f"host={address} port=5432 dbname={database} user={user} connect_timeout=5"
    return client.run("PGPASSWORD=%s psql %s -XAtq -v ON_ERROR_STOP=1 -c %s", password, conninfo, sql)


def test_listens_on_loopback_and_private_address_only(db_address):
    listening = set(db.check_output("ss -Htln 'sport = :5432' | awk '{print $4}'").split())
    assert listening == {"127.0.0.1:5432", f"{db_address}:5432"}


def test_app_host_logs_in_to_the_app_database(db_address):
    result = psql(app, db_address, "SELECT current_user || ' ' || current_database()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "inventory inventory"


def test_app_host_with_a_wrong_password_is_refused(db_address):
    result = psql(app, db_address, "SELECT 1", password="not-the-password")
    assert result.rc != 0
    assert 'password authentication failed for user "inventory"' in result.stderr


def test_app_host_reaches_only_the_app_database(db_address):
    result = psql(app, db_address, "SELECT 1", database="postgres")
    assert result.rc != 0
    assert "no pg_hba.conf entry for host" in result.stderr


def test_host_outside_the_app_group_is_refused_by_the_firewall(db_address):
    """A reset from the host firewall (common's firewall entry point): PostgreSQL never sees the client."""
    result = psql(other, db_address, "SELECT 1")
    assert result.rc != 0
    assert "Connection refused" in result.stderr, result.stderr


def test_pg_hba_refuses_an_address_the_firewall_lets_through_that_is_no_app_host(db_address):
    """The second lock: the database host's own private address passes the firewall (loopback), and
    pg_hba.conf, which names the app hosts alone, refuses it."""
    result = psql(db, db_address, "SELECT 1")
    assert result.rc != 0
    assert "no pg_hba.conf entry for host" in result.stderr, result.stderr


def test_max_connections_fits_the_app_pools(db_address):
    result = psql(app, db_address, "SHOW max_connections")
    assert result.rc == 0, result.stderr
    assert int(result.stdout) == EXPECTED_MAX_CONNECTIONS


def test_data_survives_a_restart(db_address):
    written = psql(app, db_address, "CREATE TABLE IF NOT EXISTS restart_probe (note text);"
                   "TRUNCATE restart_probe; INSERT INTO restart_probe VALUES ('kept')")
    assert written.rc == 0, written.stderr
    # The cluster of the host's own release: postgresql@15-main on Debian 12, @17-main on 13.
    version = db.check_output("ls /etc/postgresql")
    db.check_output(f"systemctl restart postgresql@{version}-main")
    read = psql(app, db_address, "SELECT note FROM restart_probe")
    assert read.rc == 0, read.stderr
    assert read.stdout.strip() == "kept"
    assert db.service("postgresql").is_enabled


def test_missing_password_fails_before_any_change_naming_the_variable():
    assert_stops_before_any_change("missing_postgresql_secret.yml", "ap-db1", "postgresql_app_password is empty or undefined")
