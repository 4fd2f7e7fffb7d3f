"""Login, sessions shared through Redis by every instance, CSRF on cookie-authenticated writes."""

from __future__ import annotations

import httpx
import redis

from support import ADMIN, COOKIE, AppProcess, Login, login, new_item

ITEM = {"sku": "AUTH-1", "name": "x", "location": "A", "unit_price": "1.00"}


def test_login_sets_a_hardened_session_cookie(app: AppProcess) -> None:
    response = httpx.post(app.base_url + "/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "max-age=7200" in cookie
    assert response.json()["csrf_token"]


def test_the_cookie_is_secure_unless_turned_off_for_plain_http(launcher) -> None:
    secure_app = launcher.start("secure", SESSION_COOKIE_SECURE="true")
    response = httpx.post(secure_app.base_url + "/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_password_is_refused(app: AppProcess) -> None:
    response = httpx.post(app.base_url + "/auth/login", json={"username": ADMIN[0], "password": "nope"})
    assert response.status_code == 401
    assert COOKIE not in response.cookies
    unknown = httpx.post(app.base_url + "/auth/login", json={"username": "nobody", "password": "nope"})
    assert unknown.status_code == 401


def test_a_session_made_through_one_instance_works_through_the_other(pair: tuple[AppProcess, AppProcess]) -> None:
    first, second = pair
    auth = login(first.base_url)
    created = httpx.post(second.base_url + "/items", json={**ITEM, "sku": "ACROSS-1"}, headers=auth.write_headers())
    assert created.status_code == 201, created.text
    assert created.headers["x-instance"] == second.name
    token = httpx.get(second.base_url + "/auth/csrf", headers=auth.cookie())
    assert token.json()["csrf_token"] == auth.csrf_token


def test_writes_need_a_session(app: AppProcess) -> None:
    assert httpx.post(app.base_url + "/items", json=ITEM).status_code == 401
    assert httpx.post(app.base_url + "/items", json=ITEM,
                      headers={"Cookie": f"{COOKIE}={'x' * 43}", "X-CSRF-Token": "y"}).status_code == 401


def test_a_cookie_authenticated_write_without_the_csrf_token_is_refused(app: AppProcess, admin: Login) -> None:
    response = httpx.post(app.base_url + "/items", json=ITEM, headers=admin.cookie())
    assert response.status_code == 403
    assert "X-CSRF-Token" in response.json()["detail"]


def test_a_wrong_csrf_token_is_refused(app: AppProcess, admin: Login) -> None:
    headers = {**admin.cookie(), "X-CSRF-Token": "not-the-token"}
    assert httpx.post(app.base_url + "/items", json=ITEM, headers=headers).status_code == 403


def test_the_csrf_token_of_another_session_is_refused(app: AppProcess, admin: Login) -> None:
    other = login(app.base_url)
    headers = {**admin.cookie(), "X-CSRF-Token": other.csrf_token}
    assert httpx.post(app.base_url + "/items", json=ITEM, headers=headers).status_code == 403


def test_reads_need_no_session(app: AppProcess, admin: Login) -> None:
    item = new_item(app.base_url, admin)
    assert httpx.get(f"{app.base_url}/items/{item['id']}").status_code == 200


def test_logout_ends_the_session_on_every_instance(pair: tuple[AppProcess, AppProcess]) -> None:
    first, second = pair
    auth = login(first.base_url)
    assert httpx.post(first.base_url + "/auth/logout", headers=auth.write_headers()).status_code == 204
    assert httpx.get(second.base_url + "/auth/csrf", headers=auth.cookie()).status_code == 401


def test_sessions_are_stored_encrypted(app: AppProcess, services: dict[str, str]) -> None:
    login(app.base_url)
    store = redis.Redis(host=services["REDIS_HOST"], port=int(services["REDIS_PORT"]),
                        password=services["REDIS_PASSWORD"], db=12)
    keys = store.keys("session:*")
    assert keys
    for key in keys:
        value = store.get(key)
        assert value is not None and b"admin" not in value and b"csrf" not in value
        assert 0 < store.ttl(key) <= 7200
    store.close()


def test_a_session_from_another_app_key_is_not_accepted(launcher, app: AppProcess) -> None:
    auth = login(app.base_url)
    other = launcher.start("other-key", APP_KEY="a-completely-different-application-key-0123")
    assert httpx.get(other.base_url + "/auth/csrf", headers=auth.cookie()).status_code == 401


def test_the_dashboard_needs_a_login(app: AppProcess) -> None:
    response = httpx.get(app.base_url + "/system/health")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    with app.client() as browser:
        signed_in = browser.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert signed_in.status_code == 303
        page = browser.get("/system/health")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    for figure in ("requests per minute", "response time p99", "cache hit rate", "connections in use"):
        assert figure in page.text


def test_the_pages_take_their_styles_from_the_served_stylesheet_and_the_csp_allows_no_inline_style(
        app: AppProcess) -> None:
    page = httpx.get(app.base_url + "/login")
    assert "<style" not in page.text and " style=" not in page.text
    assert '<link rel="stylesheet" href="/static/style.css">' in page.text
    csp = page.headers["content-security-policy"]
    assert "style-src 'self';" in csp and "unsafe-inline" not in csp
    stylesheet = httpx.get(app.base_url + "/static/style.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "body {" in stylesheet.text

