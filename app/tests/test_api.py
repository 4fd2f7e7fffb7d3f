"""The inventory API: items, search and pagination, stock movements, the cache, headers, the spec."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
import redis

from support import AppProcess, Login, new_item


@pytest.fixture
def api(app: AppProcess) -> httpx.Client:
    with app.client() as client:
        yield client


def test_an_item_is_created_read_updated_and_deleted(api: httpx.Client, admin: Login) -> None:
    created = api.post("/items", json={"sku": "CRUD-1", "name": "Bolt M6", "quantity": 5, "location": "B-02",
                                       "unit_price": 0.35}, headers=admin.write_headers())
    assert created.status_code == 201, created.text
    item = created.json()
    assert created.headers["location"] == f"/items/{item['id']}"
    assert (item["sku"], item["quantity"], item["unit_price"], item["version"]) == ("CRUD-1", 5, "0.35", 1)

    assert api.get(f"/items/{item['id']}").json() == item

    updated = api.patch(f"/items/{item['id']}", json={"name": "Bolt M6 zinc", "unit_price": "0.40"},
                        headers=admin.write_headers())
    assert updated.status_code == 200, updated.text
    changed = updated.json()
    assert (changed["name"], changed["unit_price"], changed["version"]) == ("Bolt M6 zinc", "0.40", 2)
    assert api.get(f"/items/{item['id']}").json()["name"] == "Bolt M6 zinc"

    assert api.delete(f"/items/{item['id']}", headers=admin.write_headers()).status_code == 204
    assert api.get(f"/items/{item['id']}").status_code == 404
    assert api.delete(f"/items/{item['id']}", headers=admin.write_headers()).status_code == 404


def test_a_duplicate_sku_is_a_conflict(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    new_item(app.base_url, admin, sku="DUP-1")
    again = api.post("/items", json={"sku": "DUP-1", "name": "x", "location": "A", "unit_price": "1"},
                     headers=admin.write_headers())
    assert again.status_code == 409


@pytest.mark.parametrize("body", [
    {"sku": "", "name": "x", "location": "A", "unit_price": "1"},
    {"sku": "OK-1", "name": "x", "location": "A", "unit_price": "-1"},
    {"sku": "OK-1", "name": "x", "location": "A", "unit_price": "1.001"},
    {"sku": "OK-1", "name": "x", "location": "A", "unit_price": "1", "quantity": -3},
    {"sku": "OK-1", "name": "nul\u0000byte", "location": "A", "unit_price": "1"},
    {"sku": "OK-1", "name": "x", "location": "A", "unit_price": "1", "colour": "red"},
])
def test_invalid_items_are_rejected(api: httpx.Client, admin: Login, body: dict) -> None:
    assert api.post("/items", json=body, headers=admin.write_headers()).status_code == 422


def test_the_quantity_changes_only_through_movements(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=3)
    response = api.patch(f"/items/{item['id']}", json={"quantity": 100}, headers=admin.write_headers())
    assert response.status_code == 422


def test_search_and_pagination(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    tag = f"srch{time.monotonic_ns()}"
    for n in range(5):
        new_item(app.base_url, admin, sku=f"{tag}-{n}", name=f"Gear {tag} {n}", location="Z-9")
    first = api.get("/items", params={"q": tag, "per_page": 2}).json()
    assert first["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    assert [i["sku"] for i in first["data"]] == [f"{tag}-0", f"{tag}-1"]
    last = api.get("/items", params={"q": tag, "per_page": 2, "page": 3}).json()
    assert [i["sku"] for i in last["data"]] == [f"{tag}-4"]
    assert api.get("/items", params={"q": tag, "location": "nowhere"}).json()["meta"]["total"] == 0
    # LIKE wildcards in the search are literal characters.
    assert api.get("/items", params={"q": "%"}).json()["meta"]["total"] == 0


def test_receive_ship_and_adjust_move_stock(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=10)
    path = f"/items/{item['id']}"
    received = api.post(path + "/receive", json={"quantity": 5, "reason": "PO 17"}, headers=admin.write_headers())
    assert received.status_code == 201
    assert received.json()["item"]["quantity"] == 15
    assert received.json()["movement"]["delta"] == 5
    shipped = api.post(path + "/ship", json={"quantity": 12}, headers=admin.write_headers())
    assert shipped.json()["item"]["quantity"] == 3
    adjusted = api.post(path + "/adjust", json={"delta": -1, "reason": "count"}, headers=admin.write_headers())
    assert adjusted.json()["item"]["quantity"] == 2
    movements = api.get(path + "/movements").json()
    assert [(m["kind"], m["delta"]) for m in movements["data"]] == [
        ("initial", 10), ("receive", 5), ("ship", -12), ("adjust", -1)]


def test_stock_never_goes_negative(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=2)
    response = api.post(f"/items/{item['id']}/ship", json={"quantity": 3}, headers=admin.write_headers())
    assert response.status_code == 409
    assert "insufficient stock" in response.json()["detail"]
    adjust = api.post(f"/items/{item['id']}/adjust", json={"delta": -3, "reason": "x"}, headers=admin.write_headers())
    assert adjust.status_code == 409
    assert api.get(f"/items/{item['id']}").json()["quantity"] == 2


def test_a_movement_for_a_missing_item_is_404(api: httpx.Client, admin: Login) -> None:
    response = api.post("/items/999999999/receive", json={"quantity": 1}, headers=admin.write_headers())
    assert response.status_code == 404


def test_a_retried_movement_with_the_same_idempotency_key_applies_once(
        api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=10)
    headers = admin.write_headers(**{"Idempotency-Key": f"retry-{time.monotonic_ns()}"})
    first = api.post(f"/items/{item['id']}/ship", json={"quantity": 4}, headers=headers)
    retry = api.post(f"/items/{item['id']}/ship", json={"quantity": 4}, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["movement"] == first.json()["movement"]
    assert api.get(f"/items/{item['id']}").json()["quantity"] == 6
    other = api.post(f"/items/{item['id']}/ship", json={"quantity": 5}, headers=headers)
    assert other.status_code == 409


def test_item_reads_are_cached_and_writes_refresh_the_cache(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=1)
    assert api.get(f"/items/{item['id']}").headers["x-cache"] == "hit"
    api.post(f"/items/{item['id']}/receive", json={"quantity": 4}, headers=admin.write_headers())
    read = api.get(f"/items/{item['id']}")
    assert (read.headers["x-cache"], read.json()["quantity"]) == ("hit", 5)


def test_a_cache_miss_is_filled_from_the_database(
        api: httpx.Client, admin: Login, services: dict[str, str], app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=1)
    cache = redis.Redis(host=services["REDIS_HOST"], port=int(services["REDIS_PORT"]),
                        password=services["REDIS_PASSWORD"], db=11)
    cache.delete(f"item:{item['id']}")
    assert api.get(f"/items/{item['id']}").headers["x-cache"] == "miss"
    assert api.get(f"/items/{item['id']}").headers["x-cache"] == "hit"
    cache.close()


def test_the_audit_finds_movements_summing_to_quantities(api: httpx.Client, admin: Login, app: AppProcess) -> None:
    item = new_item(app.base_url, admin, quantity=7)
    api.post(f"/items/{item['id']}/ship", json={"quantity": 2}, headers=admin.write_headers())
    audit = api.get("/stock/audit", headers=admin.cookie())
    assert audit.status_code == 200
    assert audit.json()["consistent"] is True
    # Not through `api`: its cookie jar now holds the session cookie the audit's answer sent again.
    assert httpx.get(app.base_url + "/stock/audit").status_code == 401


def test_every_response_carries_the_security_headers_and_the_instance(api: httpx.Client, app: AppProcess) -> None:
    for path in ("/items", "/items/0", "/health/liveness", "/no-such-page"):
        headers = api.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-instance"] == app.name
        assert "server" not in headers


def test_the_openapi_spec_is_served(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/items", "/items/{item_id}", "/items/{item_id}/ship", "/auth/login", "/health/readiness"):
        assert path in spec["paths"]


def test_schema_migrations_are_recorded_once(database: str, services: dict[str, str], app: AppProcess) -> None:
    with psycopg.connect(host=services["DB_HOST"], port=services["DB_PORT"], dbname=database,
                         user=services["DB_USERNAME"], password=services["DB_PASSWORD"]) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == sorted(set(versions)) and versions[0] == 1
