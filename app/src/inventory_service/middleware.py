"""ASGI middleware: request figures and response headers (outer), start-up gate and rate limit (inner)."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .runtime import Runtime
from .security import SECURITY_HEADERS

log = logging.getLogger(__name__)

INSTANCE_HEADER = "X-Instance"
_NOT_GATED = ("/openapi.json",)
_LIMITER_FAILURE_LOG_INTERVAL = 10.0


def is_probe(path: str) -> bool:
    """Health checks and scrapes: never gated, never rate limited, left out of the traffic figures."""
    return path == "/metrics" or path == "/health" or path.startswith("/health/")


class ObservabilityMiddleware:
    """Times and counts every request, and stamps every response with the security headers and
    X-Instance; an unhandled error becomes a JSON 500 that carries them too."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.extra_headers = [*SECURITY_HEADERS, (INSTANCE_HEADER.lower().encode(),
                                                  runtime.settings.app_instance.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.runtime.metrics
        start = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers + self.extra_headers
            await send(message)

        metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if response_started:
                raise
            await JSONResponse({"detail": "internal server error"}, status_code=500)(scope, receive, send_with_headers)
        finally:
            metrics.in_flight -= 1
            route = scope.get("route")
            metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status,
                            time.perf_counter() - start, probe=is_probe(scope["path"]))


class GateMiddleware:
    """Holds back traffic (not probes) until start-up is complete, and applies the shared rate limit.

    The rate limit fails open: when Redis does not answer, requests pass (and readiness, which does
    check Redis, takes the instance out of the balancer anyway).
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._limiter_failure_logged_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_probe(scope["path"]) or scope["path"] in _NOT_GATED:
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        if not rt.lifecycle.started or rt.settings.fail_readiness:
            # A release whose readiness is forced to fail (rollout failure tests) is one that never
            # became ready: it holds traffic back as an instance still starting does.
            detail = ("the service is not ready (forced by APP_FAIL_READINESS)" if rt.settings.fail_readiness
                      else "the service is starting")
            response = JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
            await response(scope, receive, send)
            return
        if rt.limiter is None:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            decision = await rt.limiter.check(client)
        except RedisError as exc:
            now = time.monotonic()
            if now - self._limiter_failure_logged_at > _LIMITER_FAILURE_LOG_INTERVAL:
                self._limiter_failure_logged_at = now
                log.warning("rate limit not applied, Redis failed: %s", exc)
            await self.app(scope, receive, send)
            return
        limit_headers = [(b"x-ratelimit-limit", str(rt.limiter.per_minute).encode()),
                         (b"x-ratelimit-remaining", str(decision.remaining).encode())]
        if not decision.allowed:
            rt.metrics.rate_limited.inc()
            response = JSONResponse({"detail": "rate limit exceeded"}, status_code=429,
                                    headers={"Retry-After": str(decision.retry_after_seconds)})
            response.raw_headers.extend(limit_headers)
            await response(scope, receive, send)
            return

        async def send_with_limit(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_limit)
