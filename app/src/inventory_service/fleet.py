"""The fleet view of the dashboard: every instance of the deployment, each with its own figures.

No instance asks another one anything (that would open a port between instances). Each instance
publishes its figures to the shared Redis every PUBLISH_SECONDS, under a key that expires after
ENTRY_TTL_SECONDS; the dashboard reads the entries of every instance the deployment lists
(FLEET_INSTANCES, written by the app role from the inventory). An instance without an entry (stopped,
hung, cut off from Redis for longer than the expiry) is shown as not answering, never left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from .health import Readiness, assess, balancer_metrics, pool_figures
from .runtime import Runtime

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 5.0
# Three missed publications, then the entry is gone.
ENTRY_TTL_SECONDS = 15
NOT_ANSWERING = "not answering"


def entry_key(app_env: str, instance: str) -> str:
    return f"rollgate:fleet:{app_env}:{instance}"


def snapshot(rt: Runtime, state: Readiness) -> dict[str, Any]:
    """This instance's figures with its readiness ``state`` (assessed by the caller), as it publishes them."""
    figures = balancer_metrics(rt, state)
    pool = pool_figures(rt)
    return {
        "instance": rt.settings.app_instance,
        "version": rt.settings.app_version,
        "ready": state.ready,
        "reason": state.reason,
        "draining": rt.lifecycle.draining,
        "requests_per_minute": figures["requests_per_minute"],
        "error_rate_percent": figures["error_rate_percent"],
        "p99_ms": figures["response_time"]["p99_ms"],
        "pool_in_use": pool["in_use"],
        "pool_size": pool["size"],
        "pool_max": pool["max"],
        "published": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def publish(rt: Runtime) -> None:
    entry = snapshot(rt, await assess(rt))
    await rt.redis.set(entry_key(rt.settings.app_env, rt.settings.app_instance), json.dumps(entry),
                       ex=ENTRY_TTL_SECONDS)


async def publish_forever(rt: Runtime) -> None:
    """Publish now, then every PUBLISH_SECONDS until cancelled. A failure is logged and retried: the
    entry then expires, and the fleet sees this instance as not answering, which is the truth."""
    while True:
        try:
            await publish(rt)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            log.debug("fleet entry not published: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(PUBLISH_SECONDS)


async def withdraw(rt: Runtime) -> None:
    """Remove this instance's entry as it stops, so the fleet shows it not answering at once."""
    with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
        await rt.redis.delete(entry_key(rt.settings.app_env, rt.settings.app_instance))


def fleet_names(listed: Sequence[str], own: str) -> list[str]:
    """The instances to show: the deployment's list in its order, and this instance if it is not listed
    (a process started by hand)."""
    names = list(dict.fromkeys(listed))
    return names if own in names else [*names, own]


def fleet_rows(names: Sequence[str], entries: Mapping[str, str | bytes | None]) -> list[dict[str, Any]]:
    """One row per name: its published entry, or a row that says it is not answering. An entry that
    cannot be read, or that names another instance, counts as none."""
    rows = []
    for name in names:
        raw = entries.get(name)
        entry: Any = None
        if raw is not None:
            with contextlib.suppress(ValueError, TypeError):
                entry = json.loads(raw)
        if isinstance(entry, dict) and entry.get("instance") == name:
            rows.append({**entry, "answering": True})
        else:
            rows.append({"instance": name, "answering": False, "version": None, "ready": False,
                         "reason": NOT_ANSWERING})
    return rows


async def read_fleet(rt: Runtime, state: Readiness) -> tuple[list[dict[str, Any]], str | None]:
    """Every instance's row, this one's from its live figures and ``state``; and the problem, if Redis could
    not be read."""
    own = rt.settings.app_instance
    names = fleet_names(rt.settings.fleet_instances, own)
    others = [name for name in names if name != own]
    entries: dict[str, Any] = {}
    problem = None
    if others:
        try:
            values = await rt.redis.mget([entry_key(rt.settings.app_env, name) for name in others])
            entries = dict(zip(others, values, strict=True))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            problem = f"the other instances' figures could not be read from Redis ({type(exc).__name__})"
    entries[own] = json.dumps(snapshot(rt, state))
    return fleet_rows(names, entries), problem
