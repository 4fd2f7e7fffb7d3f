"""GET /system/health: an HTML dashboard of the health figures, behind a login (GET/POST /login)."""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .auth import authenticate, load_session, set_session_cookie
from .health import assess, balancer_metrics, health_body, pool_figures
from .runtime import Runtime
from .sessions import COOKIE_NAME

_PAGE = Template(resources.files(__package__).joinpath("templates/page.html").read_text(encoding="utf-8"))
_STYLE = resources.files(__package__).joinpath("static/style.css").read_bytes()
_MAX_FORM_BYTES = 4096

router = APIRouter(include_in_schema=False)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _page(title: str, body: str, *, refresh: int | None = None, status_code: int = 200) -> HTMLResponse:
    refresh_tag = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(_PAGE.substitute(title=html.escape(title), body=body, refresh=refresh_tag),
                        status_code=status_code)


def _cell(value: Any) -> str:
    if value in ("up", "healthy", True):
        return f'<span class="ok">{html.escape(str(value))}</span>'
    if value in ("down", "unhealthy", False):
        return f'<span class="bad">{html.escape(str(value))}</span>'
    return html.escape("—" if value is None else str(value))


def _section(title: str, rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in rows.items())
    return f"<section><h2>{html.escape(title)}</h2><table>{cells}</table></section>"


def _login_form(error: str | None = None) -> str:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return ("<h1>Inventory service</h1><p class=\"sub\">Sign in to see the system health.</p>"
            f"<section>{message}<form method=\"post\" action=\"/login\">"
            "<label for=\"username\">User name</label>"
            "<input id=\"username\" name=\"username\" autocomplete=\"username\" required>"
            "<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" "
            "autocomplete=\"current-password\" required><br><button type=\"submit\">Sign in</button></form></section>")


# The pages' styles, public like the login page; the CSP allows styles from this origin only.
@router.get("/static/style.css")
async def stylesheet() -> Response:
    return Response(_STYLE, media_type="text/css; charset=utf-8", headers={"cache-control": "public, max-age=3600"})


@router.get("/login")
async def login_page() -> HTMLResponse:
    return _page("Sign in", _login_form())


@router.post("/login")
async def login_form(request: Request) -> Response:
    raw = await request.body()
    form = parse_qs(raw[:_MAX_FORM_BYTES].decode("utf-8", errors="replace"))
    username = (form.get("username") or [""])[0]
    password = (form.get("password") or [""])[0]
    session = None
    if 0 < len(username) <= 100 and 0 < len(password) <= 200 and username.isprintable():
        session = await authenticate(runtime(request), username, password)
    if session is None:
        return _page("Sign in", _login_form("Invalid user name or password."), status_code=401)
    response = RedirectResponse("/system/health", status_code=303)
    set_session_cookie(response, session, runtime(request).settings)
    return response


@router.get("/system/health")
async def system_health(request: Request) -> Response:
    rt = runtime(request)
    session = await load_session(request, request.cookies.get(COOKIE_NAME))
    if session is None:
        return RedirectResponse("/login", status_code=303)
    state = await assess(rt)
    health = health_body(rt, state)
    figures = balancer_metrics(rt, state)
    pool = pool_figures(rt)
    mib = 1024 * 1024
    body = "".join([
        f"<h1>Inventory service: {html.escape(rt.settings.app_instance)}</h1>",
        f"<p class=\"sub\">version {html.escape(rt.settings.app_version)}, {html.escape(rt.settings.app_env)}; "
        f"signed in as {html.escape(session.username)}; {health['timestamp']}; refreshes every 5 s</p>",
        _section("Health", {
            "status": health["status"], "ready": state.ready, "reason": state.reason,
            "draining": rt.lifecycle.draining, "database": health["database"]["status"],
            "database response time (ms)": health["database"]["response_time"], "redis": health["cache"]["status"],
            "uptime (s)": health["uptime"], "memory (MiB)": round(health["memory_usage"] / mib, 1),
            "memory peak (MiB)": round(health["memory_peak"] / mib, 1)}),
        _section("Traffic, last minute", {
            "active connections": figures["active_connections"],
            "requests per minute": figures["requests_per_minute"],
            "response time avg (ms)": figures["response_time"]["avg_ms"],
            "response time p95 (ms)": figures["response_time"]["p95_ms"],
            "response time p99 (ms)": figures["response_time"]["p99_ms"],
            "error rate (%)": figures["error_rate_percent"],
            "cache hit rate (%)": figures["cache_hit_rate_percent"]}),
        _section("Database pool", {
            "connections in use": pool["in_use"], "idle": pool["idle"], "size / max": f"{pool['size']} / {pool['max']}",
            "requests waiting": pool["requests_waiting"], "requests served": pool["requests_served"],
            "connections opened": pool["connections_opened"]}),
    ])
    return _page("System health", body, refresh=5)
