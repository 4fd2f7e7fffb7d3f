"""The health contract: /health, /health/liveness, /health/readiness, /health/detailed,
/health/metrics and /metrics.

Liveness never touches a dependency: a Redis or database outage must make instances unready (the
balancer routes around them), never make every instance restart at once.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .runtime import DEPENDENCY_TIMEOUT, Runtime
from .security import client_allowed, tokens_match

HEALTH_TOKEN_HEADER = "X-Health-Token"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class DependencyStatus:
    up: bool
    response_time_ms: float
    error: str | None = None

    def as_dict(self, with_error: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "up" if self.up else "down",
                                "response_time": round(self.response_time_ms, 3)}
        if with_error and self.error:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None
    database: DependencyStatus
    cache: DependencyStatus


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _timed(check: Any) -> DependencyStatus:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=DEPENDENCY_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the message says why
        message = str(exc) or type(exc).__name__
        return DependencyStatus(False, (time.perf_counter() - start) * 1000, message.splitlines()[0][:200])
    return DependencyStatus(True, (time.perf_counter() - start) * 1000)


async def check_database(rt: Runtime) -> DependencyStatus:
    async def select_one() -> None:
        async with rt.pool.connection(timeout=DEPENDENCY_TIMEOUT) as conn:
            await conn.execute("SELECT 1")
    return await _timed(select_one)


async def check_redis(rt: Runtime) -> DependencyStatus:
    return await _timed(rt.redis.ping)


async def assess(rt: Runtime) -> Readiness:
    """Readiness with its reason. The checks run even when the answer is already known (forced,
    draining, starting), so that /health/detailed always shows the dependencies' state."""
    database, cache = await asyncio.gather(check_database(rt), check_redis(rt))
    reason = None
    if rt.settings.fail_readiness:
        reason = "forced by APP_FAIL_READINESS"
    elif rt.lifecycle.draining:
        reason = "draining"
    elif not rt.lifecycle.started:
        reason = rt.lifecycle.startup_problem or "start-up in progress"
    elif not database.up and not cache.up:
        reason = "database and redis unavailable"
    elif not database.up:
        reason = "database unavailable"
    elif not cache.up:
        reason = "redis unavailable"
    rt.last_readiness = reason is None
    return Readiness(reason is None, reason, database, cache)


def memory_usage() -> int:
    """Resident set size in bytes."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return memory_peak()


def memory_peak() -> int:
    """Peak resident set size in bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def require_health_access(request: Request) -> None:
    rt = runtime(request)
    host = request.client.host if request.client else None
    if client_allowed(host, rt.settings.health_allowed_networks):
        return
    if tokens_match(request.headers.get(HEALTH_TOKEN_HEADER), rt.settings.health_token):
        return
    raise HTTPException(status_code=403, detail="this endpoint answers only allowed addresses or a valid token")


def health_body(rt: Runtime, state: Readiness, with_errors: bool = False) -> dict[str, Any]:
    """The /health body. Error messages (they name hosts and ports) only for restricted endpoints."""
    healthy = state.database.up and state.cache.up
    return {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": _now(),
        "version": rt.settings.app_version,
        "environment": rt.settings.app_env,
        "instance": rt.settings.app_instance,
        "database": state.database.as_dict(with_errors),
        "cache": state.cache.as_dict(with_errors),
        "memory_usage": memory_usage(),
        "memory_peak": memory_peak(),
        "uptime": round(rt.lifecycle.uptime, 3),
    }


def pool_figures(rt: Runtime) -> dict[str, int]:
    stats = rt.pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    return {
        "in_use": max(0, size - idle),
        "idle": idle,
        "size": size,
        "min": stats.get("pool_min", rt.settings.db_pool_min),
        "max": stats.get("pool_max", rt.settings.db_pool_max),
        "requests_waiting": stats.get("requests_waiting", 0),
        "requests_served": stats.get("requests_num", 0),
        "connections_opened": stats.get("connections_num", 0),
        "connections_lost": stats.get("connections_lost", 0),
    }


def balancer_metrics(rt: Runtime, state: Readiness) -> dict[str, Any]:
    window = rt.metrics.window.figures()
    pool = pool_figures(rt)
    hit_rate = rt.cache.hit_rate
    return {
        "instance": rt.settings.app_instance,
        "version": rt.settings.app_version,
        "timestamp": _now(),
        "active_connections": rt.metrics.in_flight,
        "requests_per_minute": window.requests_per_minute,
        "response_time": {"avg_ms": window.response_time_avg_ms, "p95_ms": window.response_time_p95_ms,
                          "p99_ms": window.response_time_p99_ms},
        "error_rate_percent": window.error_rate_percent,
        "cache_hit_rate_percent": None if hit_rate is None else round(hit_rate * 100, 3),
        "database_connections": {"in_use": pool["in_use"], "idle": pool["idle"], "max": pool["max"]},
        "health": {"status": "healthy" if state.database.up and state.cache.up else "unhealthy",
                   "ready": state.ready, "reason": state.reason},
    }


def register_prometheus_figures(rt: Runtime) -> None:
    """The /health/metrics figures as Prometheus gauges, read at scrape time."""

    def collect():  # type: ignore[no-untyped-def]
        window = rt.metrics.window.figures()
        pool = pool_figures(rt)
        yield GaugeMetricFamily("inventory_requests_per_minute", "Requests answered in the last minute "
                                "(probes excluded)", value=window.requests_per_minute)
        latency = GaugeMetricFamily("inventory_response_time_seconds", "Response time over the last minute "
                                    "(probes excluded)", labels=["stat"])
        for stat, value in (("avg", window.response_time_avg_ms), ("p95", window.response_time_p95_ms),
                            ("p99", window.response_time_p99_ms)):
            if value is not None:
                latency.add_metric([stat], value / 1000)
        yield latency
        yield GaugeMetricFamily("inventory_error_rate_percent", "Share of 5xx answers in the last minute",
                                value=window.error_rate_percent)
        connections = GaugeMetricFamily("inventory_db_connections", "Database pool connections", labels=["state"])
        connections.add_metric(["in_use"], pool["in_use"])
        connections.add_metric(["idle"], pool["idle"])
        yield connections
        yield GaugeMetricFamily("inventory_db_pool_max", "Largest size of the database pool", value=pool["max"])
        yield CounterMetricFamily("inventory_cache_hits", "Item reads answered from the cache", value=rt.cache.hits)
        yield CounterMetricFamily("inventory_cache_misses", "Item reads that went to the database",
                                  value=rt.cache.misses)
        hit_rate = rt.cache.hit_rate
        if hit_rate is not None:
            yield GaugeMetricFamily("inventory_cache_hit_ratio", "Cache hits over item reads", value=hit_rate)
        yield GaugeMetricFamily("inventory_ready", "1 when this instance's readiness is 200",
                                value=1 if rt.last_readiness else 0)
        yield GaugeMetricFamily("inventory_draining", "1 once SIGTERM was received",
                                value=1 if rt.lifecycle.draining else 0)
        yield GaugeMetricFamily("inventory_uptime_seconds", "Seconds since the process started",
                                value=rt.lifecycle.uptime)
        info = GaugeMetricFamily("inventory_info", "Version and instance",
                                 labels=["version", "instance", "environment"])
        info.add_metric([rt.settings.app_version, rt.settings.app_instance, rt.settings.app_env], 1)
        yield info

    rt.metrics.add_collector(collect)


router = APIRouter(tags=["health"])


@router.get("/health", summary="Health with dependency status (200 healthy, 503 a dependency is down)")
async def health(request: Request) -> JSONResponse:
    rt = runtime(request)
    state = await assess(rt)
    body = health_body(rt, state)
    return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)


@router.get("/health/liveness", summary="200 while the process can serve; never checks dependencies")
async def liveness(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    return {"status": "alive", "version": rt.settings.app_version, "instance": rt.settings.app_instance,
            "uptime": round(rt.lifecycle.uptime, 3)}


@router.get("/health/readiness", summary="200 when this instance should receive traffic, else 503 with the reason")
async def readiness(request: Request) -> JSONResponse:
    rt = runtime(request)
    state = await assess(rt)
    if state.ready:
        return JSONResponse({"status": "ready", "version": rt.settings.app_version,
                             "instance": rt.settings.app_instance})
    return JSONResponse({"status": "not ready", "reason": state.reason, "version": rt.settings.app_version,
                         "instance": rt.settings.app_instance}, status_code=503)


@router.get("/health/detailed", dependencies=[Depends(require_health_access)],
            summary="Health plus performance, pool statistics and the balancer metrics (allowlist or token)")
async def detailed(request: Request) -> JSONResponse:
    rt = runtime(request)
    state = await assess(rt)
    body = health_body(rt, state, with_errors=True)
    balancer = balancer_metrics(rt, state)
    body["readiness"] = {"ready": state.ready, "reason": state.reason, "draining": rt.lifecycle.draining,
                         "started": rt.lifecycle.started}
    body["performance"] = vars(rt.metrics.window.figures())
    body["pool"] = pool_figures(rt)
    body["cache"].update({"hits": rt.cache.hits, "misses": rt.cache.misses,
                          "hit_rate_percent": balancer["cache_hit_rate_percent"]})
    body["balancer"] = balancer
    return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)


@router.get("/health/metrics", dependencies=[Depends(require_health_access)],
            summary="Figures for balancers and dashboards, as JSON (allowlist or token)")
async def metrics_json(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    return balancer_metrics(rt, await assess(rt))


@router.get("/metrics", dependencies=[Depends(require_health_access)], response_class=Response,
            summary="The same figures in Prometheus text format (allowlist or token)")
async def metrics_prometheus(request: Request) -> Response:
    rt = runtime(request)
    await assess(rt)
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
