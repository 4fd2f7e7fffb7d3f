"""What one running instance holds: its settings, connections, lifecycle flags and figures.

Start-up does not wait for the dependencies. The server starts answering at once (liveness is 200),
while a background task connects to PostgreSQL, applies the migrations and seeds the admin user,
retrying with backoff; readiness stays 503 with the reason until that has succeeded. A database that
comes up after the application is therefore no reason for the process to crash-loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field

from psycopg import AsyncConnection, OperationalError
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from . import repository
from .cache import ItemCache
from .config import Settings
from .metrics import Metrics
from .migrations import migrate
from .ratelimit import RateLimiter
from .security import hash_password, verify_password
from .sessions import SessionStore

log = logging.getLogger(__name__)

DEPENDENCY_TIMEOUT = 2.0
# The session store's retries of a refused Redis connection: base * 2**n seconds apart, at most cap.
REDIS_RETRIES = 5
REDIS_RETRY_BASE = 0.05
REDIS_RETRY_CAP = 0.5
POOL_TIMEOUT = 3.0
STARTUP_RETRY_MAX_DELAY = 10.0


@dataclass
class Lifecycle:
    """Flags read by readiness. ``draining`` is set from the signal handler, before anything else."""

    started: bool = False
    draining: bool = False
    startup_problem: str = "start-up in progress"
    started_at: float = field(default_factory=time.monotonic)

    def begin_drain(self) -> None:
        self.draining = True

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_at


def _redis_client(settings: Settings, db: int, ride_out_restarts: bool = False) -> Redis:
    # Every client replaces a connection that died with one retry. The session store's client
    # (ride_out_restarts) also retries a refused connection (Redis restarting, or loading its data) with
    # backoff for about 1.7 s (0.1, 0.2, 0.4, 0.5, 0.5): a restart then costs a write some latency instead
    # of an error. The cache and the rate limiter fall back at once instead: they must not stall reads
    # through a Redis outage. Timeouts are never retried: a Redis that does not answer fails fast.
    retry = Retry(NoBackoff(), 1)
    if ride_out_restarts:
        retry = Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP, base=REDIS_RETRY_BASE), REDIS_RETRIES,
                      supported_errors=(RedisConnectionError,))
    pool = BlockingConnectionPool(
        host=settings.redis_host, port=settings.redis_port, db=db, password=settings.redis_password,
        max_connections=64, timeout=DEPENDENCY_TIMEOUT, socket_timeout=DEPENDENCY_TIMEOUT,
        socket_connect_timeout=DEPENDENCY_TIMEOUT, retry=retry,
        client_name="rollgate-inventory@" + re.sub(r"[^\w.:@-]", "_", settings.app_instance))
    return Redis.from_pool(pool)


def _conninfo(settings: Settings) -> str:
    return make_conninfo(
        host=settings.db_host, port=settings.db_port, dbname=settings.db_database, user=settings.db_username,
        password=settings.db_password, sslmode=settings.db_sslmode, connect_timeout=int(DEPENDENCY_TIMEOUT) + 1,
        application_name=f"rollgate-inventory {settings.app_instance}"[:63])


class Runtime:
    def __init__(self, settings: Settings, lifecycle: Lifecycle) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self.metrics = Metrics()
        # check: a connection that died with a database restart is replaced before it is handed
        # out, instead of failing the request that drew it.
        self.pool = AsyncConnectionPool(
            _conninfo(settings), min_size=settings.db_pool_min, max_size=settings.db_pool_max,
            kwargs={"autocommit": True}, open=False, timeout=POOL_TIMEOUT, name="inventory",
            check=AsyncConnectionPool.check_connection)
        self.redis = _redis_client(settings, settings.redis_db)
        self.cache_redis = _redis_client(settings, settings.redis_cache_db)
        self.session_redis = _redis_client(settings, settings.redis_session_db, ride_out_restarts=True)
        self.cache = ItemCache(self.cache_redis, settings.cache_ttl)
        self.sessions = SessionStore(self.session_redis, settings.app_key, settings.session_lifetime_minutes * 60)
        self.limiter = (RateLimiter(self.redis, settings.rate_limit_per_minute)
                        if settings.rate_limit_per_minute else None)
        self._startup_task: asyncio.Task[None] | None = None
        # The outcome of the last readiness assessment, for the Prometheus gauge.
        self.last_readiness = False

    async def open(self) -> None:
        await self.pool.open(wait=False)
        self._startup_task = asyncio.create_task(self._start_up(), name="inventory start-up")

    async def close(self) -> None:
        if self._startup_task is not None:
            self._startup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup_task
        await self.pool.close()
        for client in (self.redis, self.cache_redis, self.session_redis):
            await client.aclose()

    async def _start_up(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self.pool.connection(timeout=POOL_TIMEOUT) as conn:
                    applied = await migrate(conn)
                    if applied:
                        log.info("schema migrations applied: %s", applied)
                    await self._seed_admin(conn)
            except Exception as exc:  # any failure here is retried, and reported by readiness
                # Readiness is public: it gets the kind of failure, the log gets the message (hosts, ports).
                cause = "database unavailable" if isinstance(exc, OperationalError) else type(exc).__name__
                self.lifecycle.startup_problem = f"start-up incomplete: {cause}"
                log.warning("start-up incomplete, retrying in %.1fs: %s: %s", delay, type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STARTUP_RETRY_MAX_DELAY)
                continue
            self.lifecycle.started = True
            self.lifecycle.startup_problem = ""
            log.info("start-up complete: instance %s, version %s", self.settings.app_instance,
                     self.settings.app_version)
            return

    async def _seed_admin(self, conn: AsyncConnection) -> None:
        username, password = self.settings.admin_username, self.settings.admin_password
        if not username or not password:
            return
        user = await repository.find_user(conn, username)
        if user is not None and await asyncio.to_thread(verify_password, password, user["password_hash"]):
            return
        await repository.upsert_user(conn, username, await asyncio.to_thread(hash_password, password))
        log.info("admin user %r %s", username, "created" if user is None else "password updated")
