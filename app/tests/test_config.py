"""Configuration from the environment: defaults, and a clear stop on a missing or invalid value."""

from __future__ import annotations

import base64
import subprocess

import pytest

from inventory_service.config import ConfigError, load_settings
from support import service_command

VALID = {
    "APP_KEY": "base64:" + base64.b64encode(b"k" * 32).decode(),
    "DB_DATABASE": "inventory",
    "DB_USERNAME": "inventory",
    "DB_PASSWORD": "secret",
}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, 8000)
    return caught.value.problems


def test_defaults_follow_the_original_system() -> None:
    settings = load_settings(VALID, 8001)
    assert settings.app_env == "production"
    assert settings.session_driver == "redis"
    assert settings.session_lifetime_minutes == 120
    assert (settings.redis_db, settings.redis_cache_db, settings.redis_session_db) == (0, 1, 2)
    assert settings.session_cookie_secure is True
    assert settings.app_instance.endswith(":8001")
    assert settings.app_key == b"k" * 32


@pytest.mark.parametrize("variable", ["APP_KEY", "DB_DATABASE", "DB_USERNAME", "DB_PASSWORD"])
def test_a_missing_required_variable_is_named(variable: str) -> None:
    env = {k: v for k, v in VALID.items() if k != variable}
    assert any(p.startswith(variable) for p in problems(env))


@pytest.mark.parametrize("variable, value", [
    ("APP_KEY", "too-short"),
    ("APP_KEY", "base64:" + base64.b64encode(b"x" * 16).decode()),
    ("APP_ENV", "prod"),
    ("SESSION_DRIVER", "file"),
    ("SESSION_LIFETIME", "0"),
    ("REDIS_PORT", "http"),
    ("REDIS_CACHE_DB", "16"),
    ("DB_PORT", "70000"),
    ("DB_POOL_MAX", "0"),
    ("HEALTH_ALLOWED_IPS", "10.0.0.0/33"),
    ("DRAIN_TIMEOUT", "-1"),
    ("SESSION_COOKIE_SECURE", "maybe"),
])
def test_an_invalid_value_is_named(variable: str, value: str) -> None:
    assert any(p.startswith(variable) for p in problems({**VALID, variable: value}))


def test_every_bad_variable_is_reported_at_once() -> None:
    found = problems({"REDIS_PORT": "x", "DB_PORT": "y"})
    for variable in ("APP_KEY", "DB_DATABASE", "REDIS_PORT", "DB_PORT"):
        assert any(p.startswith(variable) for p in found)


def test_admin_credentials_come_in_pairs() -> None:
    assert any("ADMIN_USERNAME" in p for p in problems({**VALID, "ADMIN_USERNAME": "admin"}))


def test_the_process_stops_at_start_naming_the_variable() -> None:
    result = subprocess.run([*service_command(), "--port", "8999"], env={**VALID, "REDIS_PORT": "sixty"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "REDIS_PORT" in result.stderr


def test_check_config_accepts_a_valid_environment() -> None:
    result = subprocess.run([*service_command(), "--check-config"], env=VALID, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
