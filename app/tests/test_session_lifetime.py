"""The session slides: each use renews it in Redis and sends the cookie again with a fresh Max-Age.

The instance here has SESSION_LIFETIME=1 (a Max-Age of 60 s). Instead of waiting a lifetime, the
tests shorten the session's TTL in Redis, which is all the server knows of its age.
"""

from __future__ import annotations

import hashlib
import http.cookies
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from support import ADMIN, COOKIE, AppProcess, Login, login, wait_for

LIFETIME_SECONDS = 60
SHORTENED_TTL_MS = 1000
ITEM = {"name": "x", "location": "A", "unit_price": "1.00"}


@pytest.fixture(scope="module")
def short_lived(session_launcher) -> AppProcess:
    return session_launcher.start("short-sessions", SESSION_LIFETIME=str(LIFETIME_SECONDS // 60))


@pytest.fixture(scope="module")
def session_store(base_env: dict[str, str]) -> Iterator[redis.Redis]:
    store = redis.Redis(host=base_env["REDIS_HOST"], port=int(base_env["REDIS_PORT"]),
                        password=base_env["REDIS_PASSWORD"], db=int(base_env["REDIS_SESSION_DB"]))
    yield store
    store.close()


def redis_key(session_id: str) -> str:
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()


def session_cookies(response: httpx.Response) -> list[http.cookies.Morsel]:
    """The response's Set-Cookie headers for the session cookie, parsed."""
    morsels = []
    for header in response.headers.get_list("set-cookie"):
        parsed: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        parsed.load(header)
        if COOKIE in parsed:
            morsels.append(parsed[COOKIE])
    return morsels


def renewed_cookie(response: httpx.Response, auth: Login) -> http.cookies.Morsel:
    cookies = session_cookies(response)
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    assert cookies[0].value == auth.session_id
    return cookies[0]


def attributes(morsel: http.cookies.Morsel) -> dict[str, str]:
    return {name: str(value) for name, value in morsel.items() if value}


def browser_expiry(browser: httpx.Client) -> int:
    """When the client's cookie jar will drop the session cookie (a timestamp), as a browser would."""
    return next(cookie.expires for cookie in browser.cookies.jar if cookie.name == COOKIE)


def test_a_renewed_cookie_has_the_attributes_of_the_login_cookie(short_lived: AppProcess) -> None:
    signed_in = httpx.post(short_lived.base_url + "/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    auth = Login(session_id=signed_in.cookies[COOKIE], csrf_token=signed_in.json()["csrf_token"])
    used = httpx.get(short_lived.base_url + "/auth/csrf", headers=auth.cookie())
    assert used.status_code == 200
    login_cookie = attributes(session_cookies(signed_in)[0])
    assert login_cookie == attributes(renewed_cookie(used, auth))
    assert login_cookie == {"max-age": str(LIFETIME_SECONDS), "path": "/", "httponly": "True",
                            "samesite": "strict"}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/auth/csrf"), ("GET", "/stock/audit"), ("POST", "/items"), ("GET", "/system/health")])
def test_every_authenticated_response_sends_the_cookie_again_with_a_fresh_max_age(
        short_lived: AppProcess, method: str, path: str) -> None:
    auth = login(short_lived.base_url)
    body = {**ITEM, "sku": f"RENEW-{time.monotonic_ns()}"} if method == "POST" else None
    response = httpx.request(method, short_lived.base_url + path, headers=auth.write_headers(), json=body)
    assert response.status_code in (200, 201), response.text
    assert renewed_cookie(response, auth)["max-age"] == str(LIFETIME_SECONDS)


def test_a_refused_write_still_renews_the_cookie_of_its_valid_session(short_lived: AppProcess) -> None:
    auth = login(short_lived.base_url)
    response = httpx.post(short_lived.base_url + "/items", json={**ITEM, "sku": "NO-CSRF-1"}, headers=auth.cookie())
    assert response.status_code == 403
    assert renewed_cookie(response, auth)["max-age"] == str(LIFETIME_SECONDS)


def test_a_session_used_past_the_end_of_its_first_lifetime_still_works(
        short_lived: AppProcess, session_store: redis.Redis) -> None:
    with short_lived.client() as browser:
        signed_in = browser.post("/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert signed_in.status_code == 200
        session_id = signed_in.cookies[COOKIE]
        first_expiry = browser_expiry(browser)
        # The first lifetime is almost over: the session has a second left in Redis.
        assert session_store.pexpire(redis_key(session_id), SHORTENED_TTL_MS)
        assert browser.get("/auth/csrf").status_code == 200
        assert session_store.pttl(redis_key(session_id)) > SHORTENED_TTL_MS
        time.sleep(SHORTENED_TTL_MS / 1000 * 1.5)
        later = browser.get("/auth/csrf")
        assert later.status_code == 200
        assert later.json()["csrf_token"] == signed_in.json()["csrf_token"]
        assert browser_expiry(browser) > first_expiry


def test_an_expired_session_is_refused_and_its_cookie_not_sent_again(
        short_lived: AppProcess, session_store: redis.Redis) -> None:
    auth = login(short_lived.base_url)
    session_store.pexpire(redis_key(auth.session_id), 1)
    wait_for(lambda: not session_store.exists(redis_key(auth.session_id)), 5, "the session to expire in Redis")
    for response in (httpx.get(short_lived.base_url + "/auth/csrf", headers=auth.cookie()),
                     httpx.post(short_lived.base_url + "/items", json={**ITEM, "sku": "EXPIRED-1"},
                                headers=auth.write_headers())):
        assert response.status_code == 401
        assert session_cookies(response) == []


def test_logout_deletes_the_cookie_rather_than_renewing_it(short_lived: AppProcess) -> None:
    auth = login(short_lived.base_url)
    response = httpx.post(short_lived.base_url + "/auth/logout", headers=auth.write_headers())
    assert response.status_code == 204
    cookies = session_cookies(response)
    assert len(cookies) == 1
    assert cookies[0]["max-age"] == "0"


def test_a_public_read_does_not_set_the_cookie(short_lived: AppProcess) -> None:
    auth = login(short_lived.base_url)
    response = httpx.get(short_lived.base_url + "/items", headers=auth.cookie())
    assert response.status_code == 200
    assert session_cookies(response) == []
