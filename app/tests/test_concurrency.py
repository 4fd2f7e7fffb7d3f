"""Stock movements racing through two instances: no lost update, never below zero, an audit that adds up."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx

from support import AppProcess, Login, new_item


def race(requests: list[tuple[str, str, dict, dict]], workers: int = 16) -> list[httpx.Response]:
    """Send (base_url, path, body, headers) requests from many threads at once."""
    def send(request: tuple[str, str, dict, dict]) -> httpx.Response:
        base_url, path, body, headers = request
        return httpx.post(base_url + path, json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, requests))


def test_concurrent_shipments_never_oversell(pair: tuple[AppProcess, AppProcess], admin: Login) -> None:
    item = new_item(pair[0].base_url, admin, quantity=30)
    instances = itertools.cycle(pair)
    requests = [(next(instances).base_url, f"/items/{item['id']}/ship", {"quantity": 1}, admin.write_headers())
                for _ in range(60)]
    results = race(requests)
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 30, statuses
    assert statuses.count(409) == 30, statuses
    assert {r.headers["x-instance"] for r in results} == {p.name for p in pair}
    final = httpx.get(f"{pair[1].base_url}/items/{item['id']}").json()
    assert final["quantity"] == 0


def test_concurrent_receipts_and_shipments_lose_no_update(pair: tuple[AppProcess, AppProcess], admin: Login) -> None:
    item = new_item(pair[0].base_url, admin, quantity=100)
    instances = itertools.cycle(pair)
    requests = []
    for n in range(80):
        kind, quantity = ("receive", 3) if n % 2 else ("ship", 2)
        requests.append((next(instances).base_url, f"/items/{item['id']}/{kind}", {"quantity": quantity},
                         admin.write_headers()))
    results = race(requests)
    assert all(r.status_code == 201 for r in results), [r.text for r in results if r.status_code != 201]
    expected = 100 + 40 * 3 - 40 * 2
    assert httpx.get(f"{pair[0].base_url}/items/{item['id']}").json()["quantity"] == expected
    movements = httpx.get(f"{pair[1].base_url}/items/{item['id']}/movements", params={"per_page": 100}).json()
    assert sum(m["delta"] for m in movements["data"]) == expected
    # Each movement saw the stock its predecessor left: the quantities after form one serial history.
    quantities = [m["quantity_after"] for m in movements["data"]]
    deltas = [m["delta"] for m in movements["data"]]
    assert all(quantities[i] == quantities[i - 1] + deltas[i] for i in range(1, len(quantities)))


def test_one_idempotency_key_sent_to_both_instances_at_once_applies_once(
        pair: tuple[AppProcess, AppProcess], admin: Login) -> None:
    item = new_item(pair[0].base_url, admin, quantity=50)
    headers = admin.write_headers(**{"Idempotency-Key": f"race-{item['id']}"})
    requests = [(pair[n % 2].base_url, f"/items/{item['id']}/ship", {"quantity": 5}, headers) for n in range(10)]
    results = race(requests, workers=10)
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    assert len({r.json()["movement"]["id"] for r in results}) == 1
    assert httpx.get(f"{pair[0].base_url}/items/{item['id']}").json()["quantity"] == 45


def test_the_audit_adds_up_after_the_races(pair: tuple[AppProcess, AppProcess], admin: Login) -> None:
    audit = httpx.get(pair[1].base_url + "/stock/audit", headers=admin.cookie()).json()
    assert audit["consistent"] is True, audit["mismatches"]
    assert audit["items_checked"] > 0
