"""The ASGI application: routes, middleware, error mapping and the open/close of dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import ProcessCollector
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from . import auth, dashboard, fleet, health, items
from .config import Settings
from .middleware import GateMiddleware, ObservabilityMiddleware
from .repository import Conflict, NotFound
from .runtime import Lifecycle, Runtime

log = logging.getLogger(__name__)

DESCRIPTION = """Inventory management for rollgate's reference deployment.

Reads are public. Writes need a session (POST /auth/login sets the cookie) and the session's CSRF
token in the X-CSRF-Token header. Stock changes only through receive, ship and adjust, which are
atomic and never take the stock below zero; send an Idempotency-Key to make a retry safe.
"""


def create_app(settings: Settings, lifecycle: Lifecycle | None = None) -> FastAPI:
    rt = Runtime(settings, lifecycle or Lifecycle())
    health.register_prometheus_figures(rt)
    ProcessCollector(registry=rt.metrics.registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.open()
        publisher = asyncio.create_task(fleet.publish_forever(rt), name="fleet entry publisher")
        try:
            yield
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            await fleet.withdraw(rt)
            await rt.close()

    app = FastAPI(title="rollgate inventory service", version=settings.app_version, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  generate_unique_id_function=lambda route: route.name)
    app.state.runtime = rt
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(items.router)
    app.include_router(dashboard.router)
    # Starlette runs the middleware added last first: the observability layer wraps everything.
    app.add_middleware(auth.SessionCookieMiddleware, settings=settings)
    app.add_middleware(GateMiddleware, runtime=rt)
    app.add_middleware(ObservabilityMiddleware, runtime=rt)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc) or "item not found"}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable answering %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("redis unavailable answering %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "session store unavailable"}, status_code=503, headers={"Retry-After": "5"})

    return app
