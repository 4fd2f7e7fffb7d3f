"""Login, logout, the CSRF token, and the dependencies that guard routes.

Writes need a session cookie and the session's CSRF token in X-CSRF-Token (a cross-site form can
send the cookie but cannot read the token). Login itself is exempt: it has no session yet.

Each use of a session renews it in Redis for the whole lifetime, so each response to such a request
sends the cookie again with a fresh Max-Age: otherwise the browser would drop it at login plus the
lifetime, while the server still keeps the session of an active user.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, APIKeyHeader
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import repository
from .config import Settings
from .runtime import Runtime
from .schemas import Credentials, CsrfToken, LoginResult, Problem
from .security import DUMMY_PASSWORD_HASH, tokens_match, verify_password
from .sessions import COOKIE_NAME, Session

CSRF_HEADER = "X-CSRF-Token"
# The request.state attribute that tells SessionCookieMiddleware which session to send again.
_RENEWED_SESSION = "renewed_session"

session_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False, scheme_name="session",
                              description="Session cookie set by POST /auth/login")
csrf_header = APIKeyHeader(name=CSRF_HEADER, auto_error=False, scheme_name="csrf",
                           description="The session's CSRF token, required on every write")


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def load_session(request: Request, session_id: str | None) -> Session | None:
    """The request's session, renewed for the whole lifetime; its response will carry the cookie again."""
    session = await runtime(request).sessions.load(session_id)
    if session is not None:
        setattr(request.state, _RENEWED_SESSION, session)
    return session


async def current_session(request: Request,
                          session_id: Annotated[str | None, Security(session_cookie)]) -> Session:
    session = await load_session(request, session_id)
    if session is None:
        raise HTTPException(status_code=401, detail="login required")
    return session


async def writer_session(session: Annotated[Session, Depends(current_session)],
                         csrf_token: Annotated[str | None, Security(csrf_header)]) -> Session:
    if not tokens_match(csrf_token, session.csrf_token):
        raise HTTPException(status_code=403, detail=f"missing or invalid {CSRF_HEADER} header")
    return session


CurrentSession = Annotated[Session, Depends(current_session)]
WriterSession = Annotated[Session, Depends(writer_session)]


def session_cookie_header(session: Session, settings: Settings) -> tuple[bytes, bytes]:
    """The Set-Cookie header of a session, valid for the whole lifetime from now (as Redis keeps it),
    as Starlette's set_cookie writes it (the middleware below needs it as a raw header)."""
    response = Response()
    response.set_cookie(COOKIE_NAME, session.id, max_age=settings.session_lifetime_minutes * 60, path="/",
                        httponly=True, secure=settings.session_cookie_secure, samesite="strict")
    return response.raw_headers[-1]


def set_session_cookie(response: Response, session: Session, settings: Settings) -> None:
    response.raw_headers.append(session_cookie_header(session, settings))


def _sets_session_cookie(headers: list[tuple[bytes, bytes]]) -> bool:
    prefix = COOKIE_NAME.encode() + b"="
    return any(name.lower() == b"set-cookie" and value.startswith(prefix) for name, value in headers)


class SessionCookieMiddleware:
    """Sends the session cookie again, with a fresh Max-Age, on the response to every request whose
    session load_session renewed, whatever the route answers (an error such as a 409 included).

    A response that sets the cookie itself (a login, a logout deleting it) is left as it is.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # request.state is this dict; creating it here lets the routes' writes reach this middleware.
        state = scope.setdefault("state", {})

        async def send_with_cookie(message: Message) -> None:
            renewed = state.get(_RENEWED_SESSION)
            if message["type"] == "http.response.start" and renewed is not None:
                headers = list(message.get("headers", []))
                if not _sets_session_cookie(headers):
                    message["headers"] = [*headers, session_cookie_header(renewed, self.settings)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def authenticate(rt: Runtime, username: str, password: str) -> Session | None:
    """A new session for valid credentials, else None (in about the same time either way)."""
    async with rt.pool.connection() as conn:
        user = await repository.find_user(conn, username)
    stored_hash = user["password_hash"] if user else DUMMY_PASSWORD_HASH
    valid = await asyncio.to_thread(verify_password, password, stored_hash)
    if user is None or not valid:
        return None
    return await rt.sessions.create(user["id"], user["username"])


router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=LoginResult, responses={401: {"model": Problem}})
async def login(credentials: Credentials, request: Request) -> JSONResponse:
    """Start a session: sets the session cookie and returns the CSRF token for writes."""
    rt = runtime(request)
    previous = await rt.sessions.load(request.cookies.get(COOKIE_NAME))
    session = await authenticate(rt, credentials.username, credentials.password)
    if session is None:
        raise HTTPException(status_code=401, detail="invalid username or password")
    if previous is not None:
        await rt.sessions.destroy(previous.id)
    response = JSONResponse({"username": session.username, "csrf_token": session.csrf_token,
                             "expires_in": rt.sessions.lifetime_seconds})
    set_session_cookie(response, session, rt.settings)
    return response


@router.post("/logout", status_code=204, responses={401: {"model": Problem}, 403: {"model": Problem}})
async def logout(request: Request, session: WriterSession) -> Response:
    await runtime(request).sessions.destroy(session.id)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True,
                           secure=runtime(request).settings.session_cookie_secure, samesite="strict")
    return response


@router.get("/csrf", response_model=CsrfToken, responses={401: {"model": Problem}})
async def csrf(session: CurrentSession) -> dict[str, str]:
    """The current session's CSRF token."""
    return {"csrf_token": session.csrf_token}
