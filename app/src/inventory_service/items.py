"""The inventory API: items and their stock movements. Reads are public; writes need a session
and its CSRF token."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response

from . import repository
from .auth import CurrentSession, WriterSession
from .repository import Row, to_json
from .runtime import Runtime
from .schemas import (MAX_ID, PLAIN_TEXT_PATTERN, Item, ItemCreate, ItemPage, ItemUpdate, MovementPage,
                      MovementResult, Problem, StockAdjustment, StockAudit, StockChange)
from .sessions import Session

JSON = "application/json"
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
Page = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=100)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="A retried write with the same key is applied once; the retry gets the first outcome")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}}

router = APIRouter(tags=["inventory"])


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _page_meta(page: int, per_page: int, total: int) -> dict[str, int]:
    return {"page": page, "per_page": per_page, "total": total, "pages": math.ceil(total / per_page)}


async def _cache_item(rt: Runtime, item: Row) -> bytes:
    body = to_json(item)
    await rt.cache.put(item["id"], item["version"], body)
    return body


@router.get("/items", response_model=ItemPage)
async def list_items(
    request: Request,
    page: Page = 1,
    per_page: PerPage = 20,
    q: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT_PATTERN,
                                   description="Matches part of the SKU or the name")] = None,
    location: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT_PATTERN)] = None,
) -> Response:
    async with runtime(request).pool.connection() as conn:
        rows, total = await repository.list_items(conn, search=q, location=location, page=page, per_page=per_page)
    return Response(to_json({"data": rows, "meta": _page_meta(page, per_page, total)}), media_type=JSON)


def _link(operation_id: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {"item_id": "$response.body#/id"}}


# OpenAPI links from a created item to what can be done with it (used by the stateful fuzz run).
_CREATED_LINKS = {name: _link(name) for name in (
    "get_item", "update_item", "delete_item", "receive_stock", "ship_stock", "adjust_stock", "list_movements")}


@router.post("/items", status_code=201, response_model=Item,
             responses={**_ERRORS, 201: {"description": "Created", "links": _CREATED_LINKS}})
async def create_item(body: ItemCreate, request: Request, session: WriterSession) -> Response:
    rt = runtime(request)
    async with rt.pool.connection() as conn:
        item = await repository.create_item(conn, body.model_dump(), session.username)
    return Response(await _cache_item(rt, item), status_code=201, media_type=JSON,
                    headers={"Location": f"/items/{item['id']}"})


@router.get("/items/{item_id}", response_model=Item, responses={404: {"model": Problem}})
async def get_item(item_id: ItemId, request: Request) -> Response:
    """Answered from the Redis cache when it holds the item, else from the database (X-Cache says which)."""
    rt = runtime(request)
    cached = await rt.cache.get(item_id)
    if cached == b"":
        raise HTTPException(status_code=404, detail="item not found")
    if cached is not None:
        return Response(cached, media_type=JSON, headers={"X-Cache": "hit"})
    async with rt.pool.connection() as conn:
        item = await repository.get_item(conn, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return Response(await _cache_item(rt, item), media_type=JSON, headers={"X-Cache": "miss"})


@router.patch("/items/{item_id}", response_model=Item, responses=_ERRORS)
async def update_item(item_id: ItemId, body: ItemUpdate, request: Request,
                      session: WriterSession) -> Response:
    """Change descriptive fields; the quantity changes only through receive, ship and adjust."""
    rt = runtime(request)
    async with rt.pool.connection() as conn:
        item = await repository.update_item(conn, item_id, body.model_dump(exclude_unset=True, exclude_none=True))
    return Response(await _cache_item(rt, item), media_type=JSON)


@router.delete("/items/{item_id}", status_code=204, responses=_ERRORS)
async def delete_item(item_id: ItemId, request: Request, session: WriterSession) -> Response:
    rt = runtime(request)
    async with rt.pool.connection() as conn:
        await repository.delete_item(conn, item_id)
    await rt.cache.forget(item_id)
    return Response(status_code=204)


async def _move(request: Request, item_id: int, kind: str, delta: int, reason: str | None,
                idempotency_key: str | None, session: Session) -> Response:
    rt = runtime(request)
    async with rt.pool.connection() as conn:
        outcome = await repository.record_movement(conn, item_id, kind, delta, reason=reason,
                                                   idempotency_key=idempotency_key, actor=session.username)
    await _cache_item(rt, outcome.item)
    body = to_json({"movement": outcome.movement, "item": outcome.item})
    if outcome.replayed:
        return Response(body, status_code=200, media_type=JSON, headers={"Idempotent-Replayed": "true"})
    return Response(body, status_code=201, media_type=JSON)


_MOVEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 200: {"model": MovementResult, "description": "A retry of an applied Idempotency-Key"}}


@router.post("/items/{item_id}/receive", status_code=201, response_model=MovementResult,
             responses=_MOVEMENT_RESPONSES)
async def receive_stock(item_id: ItemId, body: StockChange, request: Request,
                        session: WriterSession, idempotency_key: IdempotencyKey = None) -> Response:
    """Add stock."""
    return await _move(request, item_id, "receive", body.quantity, body.reason, idempotency_key, session)


@router.post("/items/{item_id}/ship", status_code=201, response_model=MovementResult,
             responses=_MOVEMENT_RESPONSES)
async def ship_stock(item_id: ItemId, body: StockChange, request: Request,
                     session: WriterSession, idempotency_key: IdempotencyKey = None) -> Response:
    """Remove stock; 409 when there is not enough (the stock never goes negative)."""
    return await _move(request, item_id, "ship", -body.quantity, body.reason, idempotency_key, session)


@router.post("/items/{item_id}/adjust", status_code=201, response_model=MovementResult,
             responses=_MOVEMENT_RESPONSES)
async def adjust_stock(item_id: ItemId, body: StockAdjustment, request: Request,
                       session: WriterSession, idempotency_key: IdempotencyKey = None) -> Response:
    """Correct the stock by a signed delta (after a count, say), with a reason."""
    return await _move(request, item_id, "adjust", body.delta, body.reason, idempotency_key, session)


@router.get("/items/{item_id}/movements", response_model=MovementPage, responses={404: {"model": Problem}})
async def list_movements(item_id: ItemId, request: Request, page: Page = 1, per_page: PerPage = 50) -> Response:
    async with runtime(request).pool.connection() as conn:
        if await repository.get_item(conn, item_id) is None:
            raise HTTPException(status_code=404, detail="item not found")
        rows, total = await repository.list_movements(conn, item_id, page, per_page)
    return Response(to_json({"data": rows, "meta": _page_meta(page, per_page, total)}), media_type=JSON)


@router.get("/stock/audit", response_model=StockAudit, responses={401: {"model": Problem}})
async def audit(request: Request, session: CurrentSession) -> dict[str, Any]:
    """Check that every item's quantity equals the sum of its movements."""
    async with runtime(request).pool.connection() as conn:
        checked, mismatches = await repository.audit_stock(conn)
    return {"consistent": not mismatches, "items_checked": checked, "mismatches": mismatches}
