"""Graceful drain: on SIGTERM readiness turns 503 at once, requests in flight finish, then the process
exits; the drain timeout bounds the wait.

A request is held in flight without any test hook in the service: the test locks the item's row in
PostgreSQL, so a stock movement on it waits in the database until the test lets go.
"""

from __future__ import annotations

import contextlib
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from support import AppProcess, login, new_item, wait_for


def conninfo(services: dict[str, str], database: str) -> dict[str, str]:
    return {"host": services["DB_HOST"], "port": services["DB_PORT"], "dbname": database,
            "user": services["DB_USERNAME"], "password": services["DB_PASSWORD"]}


def waiting_on_a_lock(conn: psycopg.Connection, application: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND application_name LIKE %s", (f"%{application}%",)).fetchone()
    return bool(row and row[0])


def refuses_connections(app: AppProcess) -> bool:
    """True once a new connection gets no answer: refused, or reset by the listener closing under it
    (a connection the kernel queued just before the close), which a loaded machine makes likelier."""
    try:
        httpx.get(app.base_url + "/health/liveness", timeout=2)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_a_request_in_flight_at_sigterm_completes(launcher, services: dict[str, str], database: str) -> None:
    app = launcher.start("drain", DRAIN_DELAY="5", DRAIN_TIMEOUT="30")
    auth = login(app.base_url)
    item = new_item(app.base_url, auth, quantity=5)

    with psycopg.connect(**conninfo(services, database)) as blocker, \
            psycopg.connect(**conninfo(services, database), autocommit=True) as observer, \
            ThreadPoolExecutor(max_workers=1) as pool:
        blocker.execute("SELECT 1 FROM items WHERE id = %s FOR UPDATE", (item["id"],))
        in_flight = pool.submit(httpx.post, f"{app.base_url}/items/{item['id']}/receive", json={"quantity": 1},
                                headers=auth.write_headers(), timeout=60)
        wait_for(lambda: waiting_on_a_lock(observer, app.name), 15, "the movement to wait on the row lock")

        app.signal(signal.SIGTERM)
        draining = httpx.get(app.base_url + "/health/readiness")
        assert draining.status_code == 503
        assert draining.json()["reason"] == "draining"
        assert httpx.get(app.base_url + "/health/liveness").status_code == 200

        # After DRAIN_DELAY the listener closes while the request is still in flight.
        wait_for(lambda: refuses_connections(app), 20, "the instance to stop accepting connections")
        assert not in_flight.done()
        blocker.rollback()
        response = in_flight.result(timeout=30)

    assert response.status_code == 201, response.text
    assert response.json()["item"]["quantity"] == 6
    assert app.wait_exit(timeout=30) in (0, -signal.SIGTERM)
    assert "Finished server process" in app.log()


def test_the_drain_timeout_bounds_the_wait(launcher, services: dict[str, str], database: str) -> None:
    app = launcher.start("drain-timeout", DRAIN_DELAY="0", DRAIN_TIMEOUT="1")
    auth = login(app.base_url)
    item = new_item(app.base_url, auth, quantity=5)
    with psycopg.connect(**conninfo(services, database)) as blocker, \
            psycopg.connect(**conninfo(services, database), autocommit=True) as observer, \
            ThreadPoolExecutor(max_workers=1) as pool:
        blocker.execute("SELECT 1 FROM items WHERE id = %s FOR UPDATE", (item["id"],))
        stuck = pool.submit(httpx.post, f"{app.base_url}/items/{item['id']}/ship", json={"quantity": 1},
                            headers=auth.write_headers(), timeout=60)
        wait_for(lambda: waiting_on_a_lock(observer, app.name), 15, "the movement to wait on the row lock")
        app.signal(signal.SIGTERM)
        # The process exits although the lock is still held: the stuck request was cancelled.
        assert app.wait_exit(timeout=30) in (0, -signal.SIGTERM)
        blocker.rollback()
        # The client sees the connection close (or, at best, an error answer): the request was cut.
        with contextlib.suppress(httpx.TransportError):
            stuck.result(timeout=30)
    assert "timeout graceful shutdown exceeded" in app.log()
    # Nothing was half-applied: the cancelled movement rolled back.
    with psycopg.connect(**conninfo(services, database)) as conn:
        assert conn.execute("SELECT quantity FROM items WHERE id = %s", (item["id"],)).fetchone() == (5,)
