"""The schema, as numbered migrations applied once each, in order, under an advisory lock.

Many instances start at once in a rolling deployment: each takes the same transaction-level
advisory lock, so one applies the pending migrations and the others wait, then find nothing to do.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import logging

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

# Any fixed 64-bit number: the lock's identity among the advisory locks of this database.
MIGRATION_LOCK_ID = 0x726F6C6C67617465  # "rollgate"

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE items (
    id         bigserial PRIMARY KEY,
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    quantity   bigint NOT NULL CHECK (quantity >= 0),
    location   text NOT NULL,
    unit_price numeric(12, 2) NOT NULL CHECK (unit_price >= 0),
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_name_idx ON items (lower(name));
CREATE INDEX items_location_idx ON items (location);
CREATE TABLE stock_movements (
    id              bigserial PRIMARY KEY,
    item_id         bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('initial', 'receive', 'ship', 'adjust')),
    delta           bigint NOT NULL,
    quantity_after  bigint NOT NULL CHECK (quantity_after >= 0),
    reason          text,
    idempotency_key text UNIQUE,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_item_idx ON stock_movements (item_id, id);
"""),
)


async def migrate(conn: AsyncConnection) -> list[int]:
    """Apply the pending migrations in one transaction; return the versions applied."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cursor.fetchall()}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            log.info("applying schema migration %d", version)
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now
