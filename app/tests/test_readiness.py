"""Readiness follows the dependencies: 503 while Redis or PostgreSQL is down, 200 again when it is back.
Liveness stays 200 throughout."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from support import AppProcess, free_port, login, new_item, wait_for


class PrivateRedis:
    """A Redis of this test's own, so that stopping it disturbs nothing else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.password = secrets.token_hex(8)
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--requirepass", self.password,
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
        wait_for(answers, 10, "the private Redis to answer")
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def readiness(app: AppProcess) -> httpx.Response:
    return httpx.get(app.base_url + "/health/readiness", timeout=10)


def not_ready_because(app: AppProcess, reason: str) -> bool:
    response = readiness(app)
    return response.status_code == 503 and response.json()["reason"] == reason


def test_readiness_follows_redis(launcher, private_redis: PrivateRedis) -> None:
    app = launcher.start("redis-flip", REDIS_PORT=str(private_redis.port), REDIS_PASSWORD=private_redis.password)
    item = new_item(app.base_url, login(app.base_url), quantity=4)

    private_redis.stop()
    wait_for(lambda: not_ready_because(app, "redis unavailable"), 15, "readiness 503 without Redis")
    assert httpx.get(app.base_url + "/health/liveness").status_code == 200
    health = httpx.get(app.base_url + "/health")
    assert health.status_code == 503
    assert health.json()["cache"]["status"] == "down"
    assert health.json()["database"]["status"] == "up"
    # Item reads fall back to the database while the cache is away.
    assert httpx.get(f"{app.base_url}/items/{item['id']}").json()["quantity"] == 4

    private_redis.start()
    wait_for(lambda: readiness(app).status_code == 200, 15, "readiness 200 with Redis back")
    assert httpx.get(app.base_url + "/health").status_code == 200


def test_readiness_follows_the_database(launcher, pg_cluster) -> None:
    app = launcher.start("db-flip")
    pg_cluster.stop()
    wait_for(lambda: not_ready_because(app, "database unavailable"), 15, "readiness 503 without PostgreSQL")
    assert httpx.get(app.base_url + "/health/liveness").status_code == 200
    health = httpx.get(app.base_url + "/health")
    assert health.status_code == 503
    assert health.json()["database"]["status"] == "down"
    assert httpx.get(app.base_url + "/items").status_code == 503

    pg_cluster.start()
    wait_for(lambda: readiness(app).status_code == 200, 30, "readiness 200 with PostgreSQL back")
    assert httpx.get(app.base_url + "/items").status_code == 200


def test_an_instance_started_before_its_database_is_ready_once_it_arrives(launcher, pg_cluster, make_database) -> None:
    database = make_database()
    pg_cluster.stop()
    app = launcher.start("early-bird", wait="listening", DB_DATABASE=database)
    response = readiness(app)
    assert response.status_code == 503
    assert response.json()["reason"].startswith("start-up")
    assert httpx.get(app.base_url + "/items").status_code == 503

    pg_cluster.start()
    app.wait_ready(timeout=60)
    assert httpx.get(app.base_url + "/items").status_code == 200


def test_the_shared_instances_recovered_from_the_outages(pair: tuple[AppProcess, AppProcess]) -> None:
    for app in pair:
        wait_for(lambda app=app: readiness(app).status_code == 200, 30, f"{app.name} ready again")
        assert httpx.get(app.base_url + "/items").status_code == 200
