"""Settings from environment variables, named as operators of the original service know them.

Every value is checked here, before the server starts: a missing or invalid one stops the process
with a message naming the variable (all bad variables at once, not one per attempt).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TypeVar

APP_ENVIRONMENTS = ("production", "staging", "testing", "development", "local")
SESSION_DRIVERS = ("redis",)
DB_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_HEALTH_ALLOWED_IPS = "127.0.0.1/32,::1/128"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# The bounds of every number the service reads. The app role's argument specs repeat them in their
# descriptions and choices, and a unit test (tests/unit/test_app_config.py) holds the two equal.
RANGES: dict[str, tuple[int, int]] = {
    "DB_POOL_MIN": (0, 100),
    "DB_POOL_MAX": (1, 100),
    "SESSION_LIFETIME": (1, 525600),
    "REDIS_PORT": (1, 65535),
    "REDIS_DB": (0, 15),
    "REDIS_CACHE_DB": (0, 15),
    "REDIS_SESSION_DB": (0, 15),
    "REDIS_QUEUE_DB": (0, 15),
    "DB_PORT": (1, 65535),
    "CACHE_TTL": (1, 86400),
    "RATE_LIMIT_PER_MINUTE": (0, 10_000_000),
    "DRAIN_TIMEOUT": (0, 3600),
    "DRAIN_DELAY": (0, 600),
}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")


class ConfigError(Exception):
    """One or more environment variables are missing or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class Settings:
    app_env: str
    app_key: bytes = field(repr=False)
    app_version: str
    app_instance: str
    port: int
    session_lifetime_minutes: int
    session_cookie_secure: bool
    redis_host: str
    redis_port: int
    redis_password: str | None = field(repr=False)
    redis_db: int
    redis_cache_db: int
    redis_session_db: int
    redis_queue_db: int
    db_host: str
    db_port: int
    db_database: str
    db_username: str
    db_password: str = field(repr=False)
    db_sslmode: str
    db_pool_min: int
    db_pool_max: int
    cache_ttl: int
    rate_limit_per_minute: int
    health_allowed_networks: tuple[IpNetwork, ...]
    health_token: str | None = field(repr=False)
    drain_timeout: float
    drain_delay: float
    fail_readiness: bool
    admin_username: str | None
    admin_password: str | None = field(repr=False)
    access_log: bool
    log_level: str
    session_driver: str = "redis"
    # Every instance of the deployment, by its APP_INSTANCE name: the dashboard's fleet view.
    fleet_instances: tuple[str, ...] = ()


def package_version() -> str:
    try:
        return metadata.version("rollgate-inventory")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _Reader:
    """Reads variables from an environment mapping, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _fail(self, name: str, expected: str, got: str | None) -> None:
        seen = "it is missing" if got is None else f"got {got!r}"
        self.problems.append(f"{name} must be {expected}, {seen}")

    def required(self, name: str, expected: str = "set") -> str:
        value = self._raw(name)
        if value is None:
            self._fail(name, expected, None)
            return ""
        return value

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._parse(name, default, int, f"an integer from {low} to {high}", lambda v: low <= v <= high)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._parse(name, default, float, f"a number of seconds from {low:g} to {high:g}",
                           lambda v: low <= v <= high)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self._fail(name, "true or false", raw)
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in allowed:
            self._fail(name, "one of " + ", ".join(allowed), raw)
            return default
        return raw.lower()

    def _parse(self, name: str, default: T, parse: Callable[[str], T], expected: str,
               valid: Callable[[T], bool]) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self._fail(name, expected, raw)
            return default
        if not valid(value):
            self._fail(name, expected, raw)
            return default
        return value


def parse_app_key(raw: str) -> bytes:
    """Return the key material of APP_KEY: 'base64:' and 32 bytes (Laravel's form), or 32+ characters."""
    if raw.startswith("base64:"):
        try:
            key = base64.b64decode(raw[len("base64:"):], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("is not valid base64") from exc
        if len(key) != 32:
            raise ValueError(f"decodes to {len(key)} bytes, not 32")
        return key
    if len(raw) < 32:
        raise ValueError(f"is {len(raw)} characters long, fewer than 32")
    return raw.encode()


def parse_networks(raw: str) -> tuple[IpNetwork, ...]:
    networks = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


MAX_FLEET_INSTANCES = 1000


def parse_instance_names(raw: str) -> tuple[str, ...]:
    """FLEET_INSTANCES: comma-separated instance names (host:port), each printable, without spaces."""
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    for name in names:
        if len(name) > 100 or not name.isprintable() or any(c.isspace() for c in name):
            raise ValueError(f"{name[:100]!r} is no instance name")
    if len(names) > MAX_FLEET_INSTANCES:
        raise ValueError(f"lists {len(names)} instances, more than {MAX_FLEET_INSTANCES}")
    return names


def load_settings(env: Mapping[str, str], port: int) -> Settings:
    """Build the settings from ``env``; raise ConfigError naming every bad variable."""
    read = _Reader(env)

    app_key = b""
    raw_key = read.required("APP_KEY", "'base64:' followed by 32 base64-encoded bytes, or at least 32 characters")
    if raw_key:
        try:
            app_key = parse_app_key(raw_key)
        except ValueError as exc:
            read.problems.append(f"APP_KEY {exc}: it must be 'base64:' followed by 32 base64-encoded bytes, "
                                 "or at least 32 characters")

    app_version = read.text("APP_VERSION", package_version())
    if len(app_version) > 64 or not app_version.isprintable():
        read.problems.append(f"APP_VERSION must be at most 64 printable characters, got {app_version!r}")

    networks: tuple[IpNetwork, ...] = ()
    raw_networks = read.text("HEALTH_ALLOWED_IPS", DEFAULT_HEALTH_ALLOWED_IPS)
    try:
        networks = parse_networks(raw_networks)
    except ValueError:
        read.problems.append("HEALTH_ALLOWED_IPS must be a comma-separated list of addresses or CIDRs, "
                             f"got {raw_networks!r}")

    pool_min = read.integer("DB_POOL_MIN", 2, *RANGES["DB_POOL_MIN"])
    pool_max = read.integer("DB_POOL_MAX", 10, *RANGES["DB_POOL_MAX"])
    if pool_max < pool_min:
        read.problems.append(f"DB_POOL_MAX must be at least DB_POOL_MIN ({pool_min}), got {pool_max}")

    fleet_instances: tuple[str, ...] = ()
    raw_fleet = read.optional("FLEET_INSTANCES")
    if raw_fleet is not None:
        try:
            fleet_instances = parse_instance_names(raw_fleet)
        except ValueError as exc:
            read.problems.append(f"FLEET_INSTANCES must be a comma-separated list of instance names such as "
                                 f"app1:8000,app2:8000: {exc}")

    admin_username = read.optional("ADMIN_USERNAME")
    admin_password = read.optional("ADMIN_PASSWORD")
    if (admin_username is None) != (admin_password is None):
        read.problems.append("ADMIN_USERNAME and ADMIN_PASSWORD must be set together, only one is set")
    if admin_password is not None and len(admin_password) < 8:
        read.problems.append("ADMIN_PASSWORD must be at least 8 characters long")

    settings = Settings(
        app_env=read.choice("APP_ENV", "production", APP_ENVIRONMENTS),
        app_key=app_key,
        app_version=app_version,
        app_instance=read.text("APP_INSTANCE", f"{socket.gethostname()}:{port}"),
        port=port,
        session_driver=read.choice("SESSION_DRIVER", "redis", SESSION_DRIVERS),
        session_lifetime_minutes=read.integer("SESSION_LIFETIME", 120, *RANGES["SESSION_LIFETIME"]),
        session_cookie_secure=read.boolean("SESSION_COOKIE_SECURE", True),
        redis_host=read.text("REDIS_HOST", "127.0.0.1"),
        redis_port=read.integer("REDIS_PORT", 6379, *RANGES["REDIS_PORT"]),
        redis_password=read.optional("REDIS_PASSWORD"),
        redis_db=read.integer("REDIS_DB", 0, *RANGES["REDIS_DB"]),
        redis_cache_db=read.integer("REDIS_CACHE_DB", 1, *RANGES["REDIS_CACHE_DB"]),
        redis_session_db=read.integer("REDIS_SESSION_DB", 2, *RANGES["REDIS_SESSION_DB"]),
        redis_queue_db=read.integer("REDIS_QUEUE_DB", 3, *RANGES["REDIS_QUEUE_DB"]),
        db_host=read.text("DB_HOST", "127.0.0.1"),
        db_port=read.integer("DB_PORT", 5432, *RANGES["DB_PORT"]),
        db_database=read.required("DB_DATABASE", "the name of the PostgreSQL database"),
        db_username=read.required("DB_USERNAME", "the PostgreSQL user name"),
        db_password=read.required("DB_PASSWORD", "the PostgreSQL user's password"),
        db_sslmode=read.choice("DB_SSLMODE", "prefer", DB_SSLMODES),
        db_pool_min=pool_min,
        db_pool_max=pool_max,
        cache_ttl=read.integer("CACHE_TTL", 300, *RANGES["CACHE_TTL"]),
        rate_limit_per_minute=read.integer("RATE_LIMIT_PER_MINUTE", 600, *RANGES["RATE_LIMIT_PER_MINUTE"]),
        health_allowed_networks=networks,
        health_token=read.optional("HEALTH_TOKEN"),
        drain_timeout=read.number("DRAIN_TIMEOUT", 30.0, *RANGES["DRAIN_TIMEOUT"]),
        drain_delay=read.number("DRAIN_DELAY", 0.0, *RANGES["DRAIN_DELAY"]),
        fail_readiness=read.boolean("APP_FAIL_READINESS", False),
        admin_username=admin_username,
        admin_password=admin_password,
        access_log=read.boolean("ACCESS_LOG", False),
        log_level=read.choice("LOG_LEVEL", "info", LOG_LEVELS),
        fleet_instances=fleet_instances,
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings
