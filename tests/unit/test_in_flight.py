"""The rollout's in-flight wait (roles/rollout/files/in_flight.py), against real local HTTP servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_time import FakeTime
from script_module import load_script
from scripted_http import Reply, ScriptedServer, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "rollout" / "files" / "in_flight.py"

StartServer = Callable[..., ScriptedServer]


in_flight = load_script(SCRIPT, "in_flight")


def wait_idle(timeout: float, targets: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), str(timeout), *(f"{name}={url}" for name, url in targets.items())],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def metrics(active: int) -> Reply:
    # The metrics request itself is one of the instance's active connections.
    return Reply(200, {"active_connections": active + 1, "requests_per_minute": 10})


def test_it_waits_until_every_instance_is_idle(start_server: StartServer) -> None:
    busy_twice = start_server(lambda n, t: metrics(3) if n < 2 else metrics(0))
    idle = start_server(lambda n, t: metrics(0))
    result = wait_idle(30, {"app1_8000": busy_twice.url("/health/metrics"), "app1_8001": idle.url("/health/metrics")})
    assert result["busy"] == {}
    assert result["unreadable"] == {}
    assert len(busy_twice.requests) == 3
    assert len(idle.requests) == 1  # an idle instance is not asked again


def test_the_wait_ends_at_the_timeout_naming_the_instances_still_busy() -> None:
    """Fake time: one poll per second, the last at the timeout, none after it."""
    fake = FakeTime()
    asked: list[str] = []

    def read(url: str) -> tuple[int | None, str | None]:
        asked.append(url)
        return (2, None) if url == "busy" else (0, None)

    result = in_flight.wait_idle(5, {"app1_8000": "busy", "app1_8001": "idle"}, read, fake.clock, fake.sleep)
    assert result == {"seconds": 5.0, "busy": {"app1_8000": 2}, "unreadable": {}}
    assert asked.count("busy") == 6 and asked.count("idle") == 1
    assert fake.sleeps == [1.0] * 5


def test_an_instance_that_does_not_answer_is_unreadable_not_idle() -> None:
    url = f"http://127.0.0.1:{free_port()}/health/metrics"
    result = wait_idle(30, {"app2_8000": url})
    assert result["busy"] == {}
    assert result["unreadable"]["app2_8000"].startswith(f"no answer from {url}: ")
    assert "refused" in result["unreadable"]["app2_8000"]


def test_an_http_error_is_unreadable_with_its_status(start_server: StartServer) -> None:
    forbidden = start_server(lambda n, t: Reply(403, {"detail": "not from an allowed address"}))
    missing = start_server(lambda n, t: Reply(404, {"detail": "Not Found"}))
    result = wait_idle(30, {"denied": forbidden.url("/health/metrics"), "wrong": missing.url("/health/nope")})
    assert result["unreadable"] == {"denied": f"HTTP 403 from {forbidden.url('/health/metrics')}",
                                    "wrong": f"HTTP 404 from {missing.url('/health/nope')}"}
    assert len(forbidden.requests) == len(missing.requests) == 1  # not asked again


def test_a_body_that_is_not_metrics_is_unreadable_quoting_it(start_server: StartServer) -> None:
    html = start_server(lambda n, t: Reply(200, "<html>not metrics</html>"))
    other_json = start_server(lambda n, t: Reply(200, {"status": "ready"}))
    result = wait_idle(5, {"html": html.url("/health/metrics"), "json": other_json.url("/health/metrics")})
    assert result["unreadable"]["html"] == (
        f"no active_connections in the answer of {html.url('/health/metrics')}: '<html>not metrics</html>'")
    assert result["unreadable"]["json"].startswith("no active_connections in the answer of ")
    assert result["busy"] == {}


def test_bad_arguments_exit_2_with_the_usage() -> None:
    completed = subprocess.run([sys.executable, str(SCRIPT), "60", "app1_8000"], capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 2
    assert "expected NAME=URL, got 'app1_8000'" in completed.stderr
    assert "usage: in_flight.py TIMEOUT NAME=URL" in completed.stderr
