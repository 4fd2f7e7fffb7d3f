"""The rollout's in-flight wait (roles/rollout/files/in_flight.py), against real local HTTP servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripted_http import Reply, ScriptedServer, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "rollout" / "files" / "in_flight.py"

StartServer = Callable[..., ScriptedServer]


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
    assert len(busy_twice.requests) == 3
    assert len(idle.requests) == 1  # an idle instance is not asked again


def test_an_instance_that_does_not_answer_has_nothing_in_flight() -> None:
    result = wait_idle(30, {"stopped": f"http://127.0.0.1:{free_port()}/health/metrics"})
    assert result["busy"] == {}


def test_the_wait_ends_at_the_timeout_naming_the_instances_still_busy(start_server: StartServer) -> None:
    always_busy = start_server(lambda n, t: metrics(2))
    idle = start_server(lambda n, t: metrics(0))
    result = wait_idle(2, {"busy": always_busy.url("/health/metrics"), "idle": idle.url("/health/metrics")})
    assert result["busy"] == {"busy": 2}
    assert 2 <= len(always_busy.requests) <= 3


def test_a_body_that_is_not_metrics_counts_as_idle(start_server: StartServer) -> None:
    html = start_server(lambda n, t: Reply(200, "<html>not metrics</html>"))
    assert wait_idle(5, {"odd": html.url("/health/metrics")})["busy"] == {}
