"""Request and response bodies; their constraints are the OpenAPI spec the fuzz run works from."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

MAX_QUANTITY = 1_000_000_000_000
MAX_ID = 2**63 - 1
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# PostgreSQL text cannot hold NUL, and control characters have no place in names or locations.
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_PRICE = Decimal("9999999999.99")

# numeric(12, 2): the schema says exactly what validation accepts, so that generated data is valid.
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), WithJsonSchema({
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
        {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$"},
    ],
    "description": "Unit price, at most two decimal places",
})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemCreate(_Body):
    sku: str = Field(pattern=SKU_PATTERN, description="Stock keeping unit, unique")
    name: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT_PATTERN)
    quantity: int = Field(0, ge=0, le=MAX_QUANTITY, description="Initial stock, recorded as an 'initial' movement")
    location: str = Field(min_length=1, max_length=100, pattern=PLAIN_TEXT_PATTERN)
    unit_price: Price


class ItemUpdate(_Body):
    """Any of the descriptive fields; the quantity changes only through stock movements."""

    sku: str | None = Field(None, pattern=SKU_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=200, pattern=PLAIN_TEXT_PATTERN)
    location: str | None = Field(None, min_length=1, max_length=100, pattern=PLAIN_TEXT_PATTERN)
    unit_price: Price | None = None


class Item(BaseModel):
    id: int
    sku: str
    name: str
    quantity: int
    location: str
    unit_price: str = Field(description="Decimal with two places, as a string")
    version: int = Field(description="Incremented by every change")
    created_at: datetime
    updated_at: datetime


class PageMeta(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int


class ItemPage(BaseModel):
    data: list[Item]
    meta: PageMeta


class StockChange(_Body):
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    reason: str | None = Field(None, max_length=500, pattern=PLAIN_TEXT_PATTERN)


class StockAdjustment(_Body):
    delta: int = Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, description="Signed correction, not zero",
                       json_schema_extra={"not": {"const": 0}})
    reason: str = Field(min_length=1, max_length=500, pattern=PLAIN_TEXT_PATTERN)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment of zero changes nothing")
        return value


class Movement(BaseModel):
    id: int
    item_id: int
    kind: str = Field(description="initial, receive, ship or adjust")
    delta: int
    quantity_after: int
    reason: str | None
    idempotency_key: str | None
    created_by: str | None
    created_at: datetime


class MovementResult(BaseModel):
    movement: Movement
    item: Item


class MovementPage(BaseModel):
    data: list[Movement]
    meta: PageMeta


class StockAudit(BaseModel):
    consistent: bool = Field(description="Every item's quantity equals the sum of its movements")
    items_checked: int
    mismatches: list[dict[str, int]]


class Credentials(_Body):
    username: str = Field(min_length=1, max_length=100, pattern=PLAIN_TEXT_PATTERN)
    password: str = Field(min_length=1, max_length=200)


class LoginResult(BaseModel):
    username: str
    csrf_token: str = Field(description="Send as X-CSRF-Token on every write")
    expires_in: int = Field(description="Session lifetime in seconds, renewed on each use")


class CsrfToken(BaseModel):
    csrf_token: str


class Problem(BaseModel):
    detail: str
