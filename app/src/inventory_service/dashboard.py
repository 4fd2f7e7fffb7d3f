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
from .fleet import ENTRY_TTL_SECONDS, read_fleet
from .health import assess, balancer_metrics, health_body, pool_figures
from .runtime import Runtime
from .sessions import COOKIE_NAME

_PAGE = Template(resources.files(__package__).joinpath("templates/page.html").read_text(encoding="utf-8"))
_STYLE = resources.files(__package__).joinpath("static/style.css").read_bytes()
_ICON = resources.files(__package__).joinpath("static/favicon.svg").read_bytes()
_MAX_FORM_BYTES = 4096
# The dashboard reloads itself by <meta http-equiv="refresh">: no JavaScript.
_REFRESH_SECONDS = 5

router = APIRouter(include_in_schema=False)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _page(title: str, body: str, *, refresh: int | None = None, status_code: int = 200) -> HTMLResponse:
    refresh_tag = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(_PAGE.substitute(title=html.escape(title), body=body, refresh=refresh_tag),
                        status_code=status_code)


def _cell(value: Any) -> str:
    """A figure as text; a state (a boolean, up/down, healthy/unhealthy) coloured. Numbers are never states:
    1 == True and 0.0 == False in Python, hence the type checks."""
    if isinstance(value, bool):
        return f'<span class="{"ok" if value else "bad"}">{"yes" if value else "no"}</span>'
    if isinstance(value, str) and value in ("up", "healthy"):
        return f'<span class="ok">{html.escape(value)}</span>'
    if isinstance(value, str) and value in ("down", "unhealthy"):
        return f'<span class="bad">{html.escape(value)}</span>'
    return html.escape("—" if value is None else str(value))


def _section(title: str, rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in rows.items())
    return f"<section><h2>{html.escape(title)}</h2><table>{cells}</table></section>"


_FLEET_COLUMNS = ("instance", "version", "readiness", "requests/min", "errors %", "p99 ms", "db pool in use")


def _fleet_cells(row: dict[str, Any], own: str) -> list[str]:
    name = html.escape(row["instance"]) + (" (this page)" if row["instance"] == own else "")
    if not row["answering"]:
        return [name, "—", f'<span class="bad">{html.escape(row["reason"])}</span>', "—", "—", "—", "—"]
    readiness = ('<span class="ok">ready</span>' if row.get("ready")
                 else f'<span class="bad">not ready</span>: {html.escape(str(row.get("reason")))}')
    pool = f"{row.get('pool_in_use')} of {row.get('pool_size')} (max {row.get('pool_max')})"
    return [name, _cell(row.get("version")), readiness, _cell(row.get("requests_per_minute")),
            _cell(row.get("error_rate_percent")), _cell(row.get("p99_ms")), html.escape(pool)]


def _fleet_section(rows: list[dict[str, Any]], own: str, problem: str | None) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in _FLEET_COLUMNS)
    body = "".join(f'<tr class="{"up" if row["answering"] else "down"}">'
                   + "".join(f"<td>{cell}</td>" for cell in _fleet_cells(row, own)) + "</tr>" for row in rows)
    answering = sum(1 for row in rows if row["answering"])
    note = f'<p class="error">{html.escape(problem)}</p>' if problem else ""
    return (f'<section class="fleet"><h2>Fleet: {answering} of {len(rows)} instances answering</h2>{note}'
            f'<table id="fleet"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'<p class="sub">Each instance reports every few seconds; one silent for {ENTRY_TTL_SECONDS} s '
            "is shown as not answering.</p></section>")


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


# The pages name it, so that a browser asks for no /favicon.ico (a 404 in its console).
@router.get("/static/favicon.svg")
async def favicon() -> Response:
    return Response(_ICON, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})


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
    rows, problem = await read_fleet(rt, state)
    mib = 1024 * 1024
    own = rt.settings.app_instance
    body = "".join([
        f"<h1>Inventory service, {html.escape(rt.settings.app_env)}</h1>",
        f"<p class=\"sub\">signed in as {html.escape(session.username)}; "
        f"<time id=\"updated\">{health['timestamp']}</time>; refreshes every {_REFRESH_SECONDS} s</p>",
        _fleet_section(rows, own, problem),
        f"<h2 class=\"instance\">This page came from {html.escape(own)}, "
        f"version {html.escape(rt.settings.app_version)}</h2>",
        _section("Health", {
            "status": health["status"], "ready": state.ready, "reason": state.reason,
            "draining": "yes" if rt.lifecycle.draining else "no", "database": health["database"]["status"],
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
    return _page("System health", body, refresh=_REFRESH_SECONDS)
