"""Helpers for the tests: real service settings, app processes on ephemeral ports, logins."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVICES_ENV = Path(os.environ.get("ROLLGATE_TEST_SERVICES_ENV", "/var/tmp/rollgate-test-services/services.env"))
ADMIN = ("admin", "admin-password-1")
COOKIE = "rollgate_session"


def load_services_env() -> dict[str, str]:
    """The settings written by scripts/test-services.sh start."""
    if not SERVICES_ENV.exists():
        raise RuntimeError(f"{SERVICES_ENV} is missing: run 'bash scripts/test-services.sh start' first")
    values = {}
    for line in SERVICES_ENV.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, message: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def service_command() -> list[str]:
    script = Path(sys.executable).parent / "inventory-service"
    return [str(script)] if script.exists() else [sys.executable, "-m", "inventory_service"]


class AppProcess:
    """One instance of the service, started through its console script, as systemd would."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.env = {**env, "APP_INSTANCE": env.get("APP_INSTANCE", name)}
        self.name = self.env["APP_INSTANCE"]
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AppProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*service_command(), "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def readiness(self) -> httpx.Response | None:
        try:
            return httpx.get(self.base_url + "/health/readiness", timeout=5)
        except httpx.TransportError:
            return None

    def wait_ready(self, timeout: float = 30) -> AppProcess:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            response = self.readiness()
            return response is not None and response.status_code == 200
        wait_for(ready, timeout, f"{self.name} to become ready; log:\n{self.log()}")
        return self

    def wait_listening(self, timeout: float = 30) -> AppProcess:
        def answers() -> bool:
            try:
                return httpx.get(self.base_url + "/health/liveness", timeout=5).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(answers, timeout, f"{self.name} to answer liveness")
        return self

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)


@dataclass(frozen=True)
class Login:
    session_id: str
    csrf_token: str

    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.session_id}"}

    def write_headers(self, **extra: str) -> dict[str, str]:
        return {**self.cookie(), "X-CSRF-Token": self.csrf_token, **extra}


def login(base_url: str, username: str = ADMIN[0], password: str = ADMIN[1]) -> Login:
    response = httpx.post(base_url + "/auth/login", json={"username": username, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return Login(session_id=response.cookies[COOKIE], csrf_token=response.json()["csrf_token"])


def new_item(base_url: str, auth: Login, **fields: Any) -> dict[str, Any]:
    body = {"sku": f"SKU-{time.monotonic_ns()}", "name": "Test item", "quantity": 0, "location": "A-01",
            "unit_price": "9.99", **fields}
    response = httpx.post(base_url + "/items", json=body, headers=auth.write_headers(), timeout=30)
    assert response.status_code == 201, response.text
    return response.json()
