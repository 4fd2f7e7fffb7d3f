"""The dashboard's fleet view: every instance the deployment lists, from the entries each publishes to Redis."""

from __future__ import annotations

import json
import re
import signal

import pytest
import redis

from inventory_service.config import ConfigError, load_settings
from inventory_service.fleet import ENTRY_TTL_SECONDS, NOT_ANSWERING, entry_key, fleet_names, fleet_rows
from support import ADMIN, wait_for

GOOD_ENV = {"APP_KEY": "0123456789abcdef0123456789abcdef", "DB_DATABASE": "inventory", "DB_USERNAME": "inventory",
            "DB_PASSWORD": "secret"}


def test_the_names_are_the_deployments_in_order_with_an_unlisted_own_instance_last() -> None:
    assert fleet_names(["app1:8000", "app2:8000", "app1:8000"], "app2:8000") == ["app1:8000", "app2:8000"]
    assert fleet_names([], "laptop:8000") == ["laptop:8000"]
    assert fleet_names(["app1:8000"], "laptop:8000") == ["app1:8000", "laptop:8000"]


def test_a_listed_instance_without_a_readable_entry_of_its_own_is_not_answering() -> None:
    entry = {"instance": "app1:8000", "version": "1.2.0", "ready": True, "reason": None}
    rows = fleet_rows(["app1:8000", "app1:8001", "app2:8000", "app2:8001"],
                      {"app1:8000": json.dumps(entry), "app1:8001": None, "app2:8000": b"{not json",
                       "app2:8001": json.dumps({**entry})})  # app1:8000's entry under app2:8001's key
    assert [row["answering"] for row in rows] == [True, False, False, False]
    assert rows[0]["version"] == "1.2.0"
    assert [row["instance"] for row in rows] == ["app1:8000", "app1:8001", "app2:8000", "app2:8001"]
    assert {row["reason"] for row in rows[1:]} == {NOT_ANSWERING}


@pytest.mark.parametrize("raw", ["app1:8000,app 2:8000", "app1:8000,a\tb", ",".join(f"h{i}:1" for i in range(1001))])
def test_a_bad_instance_list_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="FLEET_INSTANCES must be a comma-separated list of instance names"):
        load_settings({**GOOD_ENV, "FLEET_INSTANCES": raw}, 8000)
    assert load_settings({**GOOD_ENV, "FLEET_INSTANCES": " app1:8000, app2:8000 "}, 8000).fleet_instances == (
        "app1:8000", "app2:8000")


def _fleet_table(page: str) -> dict[str, str]:
    """{instance: the text of its row} of the dashboard's fleet table."""
    table = re.search(r'<table id="fleet">(.*?)</table>', page, re.S)
    assert table, page
    rows = {}
    for row in re.findall(r"<tr class=\"(?:up|down)\">(.*?)</tr>", table.group(1), re.S):
        cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        rows[cells[0].removesuffix(" (this page)")] = " | ".join(cells)
    return rows


def test_the_dashboard_lists_every_instance_of_the_deployment_and_one_that_stopped_as_not_answering(
        launcher, services: dict[str, str]) -> None:
    fleet = "fleet-a,fleet-b,fleet-c,fleet-gone"
    first = launcher.start("fleet-a", wait="none", FLEET_INSTANCES=fleet)
    second = launcher.start("fleet-b", wait="none", FLEET_INSTANCES=fleet, APP_VERSION="1.1.0-b")
    third = launcher.start("fleet-c", wait="none", FLEET_INSTANCES=fleet)
    for app in (first, second, third):
        app.wait_ready()
    with first.client() as browser:
        assert browser.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 303

        def table() -> dict[str, str]:
            return _fleet_table(browser.get("/system/health").text)

        # Each publishes at start and every few seconds; wait until the others' entries say ready.
        wait_for(lambda: " | ready | " in table().get("fleet-b", "") and " | ready | " in table().get("fleet-c", ""),
                 15, "fleet-b and fleet-c to show ready")
        rows = table()
        assert list(rows) == ["fleet-a", "fleet-b", "fleet-c", "fleet-gone"]
        assert rows["fleet-a"].startswith("fleet-a (this page) | 1.0.0-test | ready")
        assert rows["fleet-b"].startswith("fleet-b | 1.1.0-b | ready")
        assert rows["fleet-gone"] == "fleet-gone | — | not answering | — | — | — | —"
        assert "3 of 4 instances answering" in browser.get("/system/health").text

        # A stopped instance withdraws its entry: not answering at once, and still listed.
        second.stop()
        assert table()["fleet-b"] == "fleet-b | — | not answering | — | — | — | —"

        # A killed one cannot: Redis expires its entry within ENTRY_TTL_SECONDS, and then it reads as fleet-gone.
        third.signal(signal.SIGKILL)
        third.wait_exit()
        client = redis.Redis(host=services["REDIS_HOST"], port=int(services["REDIS_PORT"]),
                             password=services["REDIS_PASSWORD"], db=int(first.env["REDIS_DB"]))
        try:
            ttl = client.pttl(entry_key("testing", "fleet-c"))
        finally:
            client.close()
        assert 0 < ttl <= ENTRY_TTL_SECONDS * 1000


def test_a_figure_is_never_coloured_as_a_state() -> None:
    from inventory_service.dashboard import _cell

    assert _cell(1) == "1" and _cell(0.0) == "0.0" and _cell(None) == "—"
    assert _cell(True) == '<span class="ok">yes</span>' and _cell(False) == '<span class="bad">no</span>'
    assert _cell("up") == '<span class="ok">up</span>' and _cell("unhealthy") == '<span class="bad">unhealthy</span>'
