"""Fixtures: a database of its own for this run, clean Redis DBs, and app instances as real processes.

Needs the services of scripts/test-services.sh (a Redis with a password and a PostgreSQL cluster on
127.0.0.1); the settings come from the file it writes.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from support import ADMIN, AppProcess, Login, load_services_env, login

# The Redis DBs the tests use, away from the defaults (0-3) a developer's own instance may use.
REDIS_TEST_DBS = {"REDIS_DB": "10", "REDIS_CACHE_DB": "11", "REDIS_SESSION_DB": "12", "REDIS_QUEUE_DB": "13"}
# Two more for tests that need a rate-limit store of their own.
SPARE_REDIS_DBS = ("14", "15")
APP_VARIABLE_PREFIXES = ("APP_", "DB_", "REDIS_", "SESSION_", "HEALTH_", "DRAIN_", "RATE_LIMIT", "ADMIN_",
                         "CACHE_", "ACCESS_LOG", "LOG_LEVEL", "FORWARDED_ALLOW_IPS", "FLEET_")


class Launcher:
    """Starts app processes and stops every one of them at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[AppProcess] = []

    def start(self, name: str, *, wait: str = "ready", **overrides: str) -> AppProcess:
        app = AppProcess({**self.env, **overrides}, self.log_dir, name).start()
        self.processes.append(app)
        if wait == "ready":
            app.wait_ready()
        elif wait == "listening":
            app.wait_listening()
        return app

    def stop_all(self) -> None:
        for app in self.processes:
            app.stop()


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    return load_services_env()


@pytest.fixture(scope="session")
def pg_admin_conninfo(services: dict[str, str]) -> str:
    return psycopg.conninfo.make_conninfo(host=services["DB_HOST"], port=services["DB_PORT"],
                                          dbname=services["DB_DATABASE"], user=services["DB_USERNAME"],
                                          password=services["DB_PASSWORD"])


@pytest.fixture(scope="session")
def make_database(pg_admin_conninfo: str) -> Iterator:
    """Creates databases for this run (each test run works in its own) and drops them at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"rollgate_t_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield make
    with psycopg.connect(pg_admin_conninfo, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database(make_database) -> str:
    return make_database()


@pytest.fixture(scope="session")
def redis_clean(services: dict[str, str]) -> None:
    # Item ids restart at 1 in a new database: cached items of an earlier run must not answer for them.
    for db in (*REDIS_TEST_DBS.values(), *SPARE_REDIS_DBS):
        client = redis.Redis(host=services["REDIS_HOST"], port=int(services["REDIS_PORT"]),
                             password=services["REDIS_PASSWORD"], db=int(db))
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def base_env(services: dict[str, str], database: str, redis_clean: None) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(APP_VARIABLE_PREFIXES)}
    return {
        **inherited,
        **{k: v for k, v in services.items() if k.startswith(("DB_", "REDIS_"))},
        **REDIS_TEST_DBS,
        "DB_DATABASE": database,
        "APP_ENV": "testing",
        "APP_KEY": "base64:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "APP_VERSION": "1.0.0-test",
        "SESSION_COOKIE_SECURE": "false",
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "5",
        "DRAIN_TIMEOUT": "10",
        "DRAIN_DELAY": "0",
    }


@pytest.fixture(scope="session")
def session_launcher(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(base_env, tmp_path_factory.mktemp("app-logs"))
    yield launcher
    launcher.stop_all()


@pytest.fixture
def launcher(base_env: dict[str, str], tmp_path: Path) -> Iterator[Launcher]:
    """For instances a test starts with settings of its own; they stop when the test ends."""
    launcher = Launcher(base_env, tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def pair(session_launcher: Launcher) -> tuple[AppProcess, AppProcess]:
    """Two instances of the service on the same database and Redis, as behind a balancer."""
    first = session_launcher.start("app-a", wait="none")
    second = session_launcher.start("app-b", wait="none")
    return first.wait_ready(), second.wait_ready()


@pytest.fixture(scope="session")
def app(pair: tuple[AppProcess, AppProcess]) -> AppProcess:
    return pair[0]


@pytest.fixture(scope="session")
def admin(app: AppProcess) -> Login:
    return login(app.base_url)


@pytest.fixture(scope="session")
def pg_cluster(services: dict[str, str]):
    """Stops and starts the test PostgreSQL cluster (for readiness tests)."""
    script = services["TEST_SERVICES_SCRIPT"]

    class Cluster:
        def stop(self) -> None:
            subprocess.run(["bash", script, "postgres-stop"], check=True, capture_output=True)

        def start(self) -> None:
            subprocess.run(["bash", script, "postgres-start"], check=True, capture_output=True)

    cluster = Cluster()
    yield cluster
    cluster.start()
