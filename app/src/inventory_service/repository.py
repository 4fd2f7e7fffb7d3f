"""SQL for items, stock movements and users. Each function takes a connection from the pool.

Connections are in autocommit mode; every write runs in an explicit transaction. A stock movement
is one conditional UPDATE (``quantity + delta`` must stay within 0..MAX_QUANTITY, checked by the row
update itself, so concurrent movements from any number of instances serialise on the row lock and
none is lost) plus its movement row, in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row

from .schemas import MAX_QUANTITY

ITEM_COLUMNS = "id, sku, name, quantity, location, unit_price, version, created_at, updated_at"
MOVEMENT_COLUMNS = ("id, item_id, kind, delta, quantity_after, reason, idempotency_key, created_by, "
                    "created_at")
UPDATABLE_ITEM_FIELDS = ("sku", "name", "location", "unit_price")

Row = dict[str, Any]


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The request contradicts the stored state (a duplicate SKU, not enough stock, a reused key)."""


@dataclass(frozen=True)
class MovementOutcome:
    movement: Row
    item: Row
    replayed: bool


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(value: Any) -> bytes:
    """The API's JSON encoding (unit prices as two-place decimal strings, times in ISO 8601)."""
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def create_item(conn: AsyncConnection, fields: dict[str, Any], actor: str) -> Row:
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        try:
            await cur.execute(
                f"INSERT INTO items (sku, name, quantity, location, unit_price) "
                f"VALUES (%(sku)s, %(name)s, %(quantity)s, %(location)s, %(unit_price)s) RETURNING {ITEM_COLUMNS}",
                fields)
        except errors.UniqueViolation as exc:
            raise Conflict(f"an item with SKU {fields['sku']!r} already exists") from exc
        item = await cur.fetchone()
        assert item is not None
        # The initial stock is a movement too, so that the movements of an item always sum to its quantity.
        await cur.execute(
            "INSERT INTO stock_movements (item_id, kind, delta, quantity_after, created_by) "
            "VALUES (%s, 'initial', %s, %s, %s)", (item["id"], item["quantity"], item["quantity"], actor))
    return item


async def get_item(conn: AsyncConnection, item_id: int) -> Row | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = %s", (item_id,))
    return await cur.fetchone()


async def list_items(conn: AsyncConnection, *, search: str | None, location: str | None,
                     page: int, per_page: int) -> tuple[list[Row], int]:
    conditions = []
    params: dict[str, Any] = {"limit": per_page, "offset": (page - 1) * per_page}
    if search:
        conditions.append("(sku ILIKE %(pattern)s OR name ILIKE %(pattern)s)")
        params["pattern"] = _like_pattern(search)
    if location:
        conditions.append("location = %(location)s")
        params["location"] = location
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT count(*) AS total FROM items {where}", params)
    counted = await cur.fetchone()
    total = counted["total"] if counted else 0
    await cur.execute(
        f"SELECT {ITEM_COLUMNS} FROM items {where} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s", params)
    return await cur.fetchall(), total


async def update_item(conn: AsyncConnection, item_id: int, changes: dict[str, Any]) -> Row:
    fields = {k: v for k, v in changes.items() if k in UPDATABLE_ITEM_FIELDS}
    if not fields:
        item = await get_item(conn, item_id)
        if item is None:
            raise NotFound
        return item
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    cur = conn.cursor(row_factory=dict_row)
    try:
        async with conn.transaction():
            await cur.execute(
                f"UPDATE items SET {assignments}, version = version + 1, updated_at = now() "
                f"WHERE id = %(id)s RETURNING {ITEM_COLUMNS}", {**fields, "id": item_id})
            item = await cur.fetchone()
    except errors.UniqueViolation as exc:
        raise Conflict(f"an item with SKU {fields.get('sku')!r} already exists") from exc
    if item is None:
        raise NotFound
    return item


async def delete_item(conn: AsyncConnection, item_id: int) -> None:
    cur = await conn.execute("DELETE FROM items WHERE id = %s", (item_id,))
    if cur.rowcount == 0:
        raise NotFound


async def _movement_by_key(conn: AsyncConnection, key: str) -> Row | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {MOVEMENT_COLUMNS} FROM stock_movements WHERE idempotency_key = %s", (key,))
    return await cur.fetchone()


async def _replay(conn: AsyncConnection, existing: Row, item_id: int, kind: str, delta: int) -> MovementOutcome:
    if (existing["item_id"], existing["kind"], existing["delta"]) != (item_id, kind, delta):
        raise Conflict("this Idempotency-Key was already used for a different stock movement")
    item = await get_item(conn, item_id)
    if item is None:
        raise NotFound
    return MovementOutcome(movement=existing, item=item, replayed=True)


async def record_movement(conn: AsyncConnection, item_id: int, kind: str, delta: int, *,
                          reason: str | None, idempotency_key: str | None, actor: str) -> MovementOutcome:
    """Apply ``delta`` to the item's stock atomically; a retried key returns the first outcome."""
    if idempotency_key:
        existing = await _movement_by_key(conn, idempotency_key)
        if existing is not None:
            return await _replay(conn, existing, item_id, kind, delta)
    cur = conn.cursor(row_factory=dict_row)
    try:
        async with conn.transaction():
            await cur.execute(
                f"UPDATE items SET quantity = quantity + %(delta)s, version = version + 1, updated_at = now() "
                f"WHERE id = %(id)s AND quantity + %(delta)s BETWEEN 0 AND %(max)s RETURNING {ITEM_COLUMNS}",
                {"id": item_id, "delta": delta, "max": MAX_QUANTITY})
            item = await cur.fetchone()
            if item is None:
                await cur.execute("SELECT quantity FROM items WHERE id = %s", (item_id,))
                current = await cur.fetchone()
                if current is None:
                    raise NotFound
                if delta < 0:
                    raise Conflict(f"insufficient stock: {current['quantity']} available, {-delta} requested")
                raise Conflict(f"the quantity would exceed {MAX_QUANTITY}")
            await cur.execute(
                f"INSERT INTO stock_movements (item_id, kind, delta, quantity_after, reason, idempotency_key, "
                f"created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {MOVEMENT_COLUMNS}",
                (item_id, kind, delta, item["quantity"], reason, idempotency_key, actor))
            movement = await cur.fetchone()
    except errors.UniqueViolation:
        # The same key committed concurrently (a retry racing its original, maybe through another
        # instance); this transaction rolled back, so the stock changed once.
        existing = await _movement_by_key(conn, idempotency_key or "")
        if existing is None:
            raise
        return await _replay(conn, existing, item_id, kind, delta)
    assert movement is not None
    return MovementOutcome(movement=movement, item=item, replayed=False)


async def list_movements(conn: AsyncConnection, item_id: int, page: int, per_page: int) -> tuple[list[Row], int]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT count(*) AS total FROM stock_movements WHERE item_id = %s", (item_id,))
    counted = await cur.fetchone()
    await cur.execute(
        f"SELECT {MOVEMENT_COLUMNS} FROM stock_movements WHERE item_id = %s ORDER BY id LIMIT %s OFFSET %s",
        (item_id, per_page, (page - 1) * per_page))
    return await cur.fetchall(), counted["total"] if counted else 0


async def audit_stock(conn: AsyncConnection) -> tuple[int, list[Row]]:
    """Items whose quantity differs from the sum of their movements (none, when all is well)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT i.id AS item_id, i.quantity, coalesce(sum(m.delta), 0)::bigint AS movements_sum "
        "FROM items i LEFT JOIN stock_movements m ON m.item_id = i.id "
        "GROUP BY i.id HAVING i.quantity <> coalesce(sum(m.delta), 0) ORDER BY i.id")
    mismatches = await cur.fetchall()
    await cur.execute("SELECT count(*) AS n FROM items")
    counted = await cur.fetchone()
    return (counted["n"] if counted else 0), mismatches


async def find_user(conn: AsyncConnection, username: str) -> Row | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT id, username, password_hash FROM users WHERE username = %s", (username,))
    return await cur.fetchone()


async def upsert_user(conn: AsyncConnection, username: str, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO users (username, password_hash) VALUES (%s, %s) "
        "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash",
        (username, password_hash))
