"""Read models of the catalog, and the queries that read them.

- ``catalog``: brands, products, their SKUs and current list prices per market.
- ``stock``: per SKU on hand / reserved / available, the flash deals on it (units left) and one
  row per order answered or waiting (reserved, rejected with its reason, released, waiting for
  its deal, withdrawn).

Both are plain folds of the local store, rebuildable from position 0 with identical rows: stock
figures are copied from the events' ``*_after`` fields rather than accumulated, times are
stored as the events' ISO-8601 UTC text, options as JSON with sorted keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shopstream_contracts import Money
from shopstream_contracts.catalog.v1 import (
    BrandOnboarded,
    ListPriceSet,
    ProductCreated,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from shopstream_eventstore import RecordedEvent
from shopstream_processing import ReadModelDb, Row, Statement, Table, TableNames
from shopstream_service.domain import DomainEvent, InternalEvent
from shopstream_service.events import EventCatalog

from .events import (
    INTERNAL_EVENTS,
    DealClosed,
    DealOpened,
    DealUnitsReturned,
    DeferredReservationWithdrawn,
    ReservationDeferred,
    SkuRegistered,
)

_EVENTS = EventCatalog(INTERNAL_EVENTS)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _fold(
    events: Sequence[RecordedEvent],
    tables: TableNames,
    handlers: Mapping[type[DomainEvent], Callable[[Any, TableNames], Sequence[Statement]]],
) -> list[Statement]:
    types = {_type_name(model) for model in handlers}
    statements: list[Statement] = []
    for recorded in events:
        if recorded.type in types:
            event = _EVENTS.decode(recorded)
            statements.extend(handlers[type(event)](event, tables))
    return statements


def _type_name(model: type[DomainEvent]) -> str:
    return model.type_name if issubclass(model, InternalEvent) else model.contract.type


# --- catalog: brands, products, SKUs, list prices ---------------------------------------------


def _brand(event: BrandOnboarded, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"INSERT INTO {t['brands']} (brand_id, name, country, default_currency, onboarded_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_id) DO NOTHING",
            (event.brand_id, event.name, event.country, event.default_currency, _iso(event.occurred_at)),
        )
    ]


def _product(event: ProductCreated, t: TableNames) -> Sequence[Statement]:
    product = Statement(
        f"INSERT INTO {t['products']} (product_id, brand_id, title, description, created_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product_id) DO NOTHING",
        (event.product_id, event.brand_id, event.title, event.description, _iso(event.occurred_at)),
    )
    skus = [
        Statement(
            f"INSERT INTO {t['skus']} (sku_id, product_id, brand_id, ordinal, options, barcode) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku_id) DO NOTHING",
            (
                sku.sku_id,
                event.product_id,
                event.brand_id,
                ordinal,
                json.dumps(sku.options, sort_keys=True),
                sku.barcode,
            ),
        )
        for ordinal, sku in enumerate(event.skus)
    ]
    return [product, *skus]


def _price(event: ListPriceSet, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"INSERT INTO {t['list_prices']} (sku_id, market, product_id, amount, currency, set_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku_id, market) DO UPDATE SET "
            "amount = excluded.amount, currency = excluded.currency, set_at = excluded.set_at",
            (
                event.sku_id,
                event.market,
                event.product_id,
                event.price.amount,
                event.price.currency,
                _iso(event.occurred_at),
            ),
        )
    ]


class CatalogView:
    name = "catalog"
    version = 1
    tables = (
        Table(
            "brands",
            "brand_id text PRIMARY KEY, name text NOT NULL, country text NOT NULL, "
            "default_currency text NOT NULL, onboarded_at text NOT NULL",
        ),
        Table(
            "products",
            "product_id text PRIMARY KEY, brand_id text NOT NULL, title text NOT NULL, description text, "
            "created_at text NOT NULL",
            indexes=("brand_id, product_id",),
        ),
        Table(
            "skus",
            "sku_id text PRIMARY KEY, product_id text NOT NULL, brand_id text NOT NULL, "
            "ordinal integer NOT NULL, options text NOT NULL, barcode text",
            indexes=("product_id, ordinal",),
        ),
        Table(
            "list_prices",
            "sku_id text NOT NULL, market text NOT NULL, product_id text NOT NULL, amount bigint NOT NULL, "
            "currency text NOT NULL, set_at text NOT NULL, PRIMARY KEY (sku_id, market)",
            indexes=("product_id",),
        ),
    )

    _HANDLERS: Mapping[type[DomainEvent], Callable[[Any, TableNames], Sequence[Statement]]] = {
        BrandOnboarded: _brand,
        ProductCreated: _product,
        ListPriceSet: _price,
    }

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        return _fold(events, tables, self._HANDLERS)


# --- stock: figures, deals, reservations ------------------------------------------------------


def _registered(event: SkuRegistered, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"INSERT INTO {t['stock']} (sku_id, product_id, brand_id, on_hand, reserved, available) "
            "VALUES ($1, $2, $3, 0, 0, 0) ON CONFLICT (sku_id) DO NOTHING",
            (event.sku_id, event.product_id, event.brand_id),
        )
    ]


def _on_hand(event: StockReceived | StockAdjusted, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"UPDATE {t['stock']} SET on_hand = $2, available = $3, reserved = $4 WHERE sku_id = $1",
            (
                event.sku_id,
                event.on_hand_after,
                event.available_after,
                event.on_hand_after - event.available_after,
            ),
        )
    ]


def _available(sku_id: str, available: int, t: TableNames) -> Statement:
    return Statement(
        f"UPDATE {t['stock']} SET available = $2, reserved = on_hand - $2 WHERE sku_id = $1",
        (sku_id, available),
    )


def _answer(
    t: TableNames, order_id: str, sku_id: str, buyer_id: str, quantity: int, deal_id: str | None, **row: Any
) -> Statement:
    """Insert or update the order's reservation row; product and brand come from the SKU."""
    columns = ["status", "reservation_id", "reason", "detail", "waiting_since", "answered_at"]
    values = [row.get(column) for column in columns]
    placeholders = ", ".join(f"${n}" for n in range(6, 6 + len(columns)))
    return Statement(
        f"INSERT INTO {t['reservations']} (order_id, sku_id, buyer_id, quantity, deal_id, released, "
        f"product_id, brand_id, {', '.join(columns)}) "
        f"VALUES ($1, $2, $3, $4, $5, 0, "
        f"(SELECT product_id FROM {t['stock']} WHERE sku_id = $2), "
        f"(SELECT brand_id FROM {t['stock']} WHERE sku_id = $2), {placeholders}) "
        f"ON CONFLICT (order_id) DO UPDATE SET "
        + ", ".join(f"{column} = excluded.{column}" for column in columns if column != "waiting_since")
        # An order that waited for its deal keeps the time it started waiting.
        + f", waiting_since = COALESCE(excluded.waiting_since, {t['reservations']}.waiting_since)",
        (order_id, sku_id, buyer_id, quantity, deal_id, *values),
    )


def _reserved(event: StockReserved, t: TableNames) -> Sequence[Statement]:
    statements = [
        _available(event.sku_id, event.available_after, t),
        _answer(
            t,
            event.order_id,
            event.sku_id,
            event.buyer_id,
            event.quantity,
            event.deal_id,
            status="reserved",
            reservation_id=event.reservation_id,
            answered_at=_iso(event.occurred_at),
        ),
    ]
    if event.deal_id is not None:
        statements.append(
            Statement(
                f"UPDATE {t['deals']} SET units_left = $3 WHERE sku_id = $1 AND deal_id = $2",
                (event.sku_id, event.deal_id, event.deal_units_left),
            )
        )
    return statements


def _rejected(event: StockReservationRejected, t: TableNames) -> Sequence[Statement]:
    return [
        _answer(
            t,
            event.order_id,
            event.sku_id,
            event.buyer_id,
            event.quantity,
            event.deal_id,
            status="rejected",
            reason=event.reason,
            detail=event.detail,
            answered_at=_iso(event.occurred_at),
        )
    ]


def _released(event: StockReleased, t: TableNames) -> Sequence[Statement]:
    return [
        _available(event.sku_id, event.available_after, t),
        Statement(
            f"UPDATE {t['reservations']} SET released = released + $2, "
            "status = CASE WHEN released + $2 >= quantity THEN 'released' ELSE status END "
            "WHERE order_id = $1",
            (event.order_id, event.quantity),
        ),
    ]


def _deferred(event: ReservationDeferred, t: TableNames) -> Sequence[Statement]:
    return [
        _answer(
            t,
            event.order_id,
            event.sku_id,
            event.buyer_id,
            event.quantity,
            event.deal_id,
            status="waiting",
            reservation_id=event.reservation_id,
            waiting_since=_iso(event.occurred_at),
        )
    ]


def _withdrawn(event: DeferredReservationWithdrawn, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"UPDATE {t['reservations']} SET status = 'withdrawn', answered_at = $2 WHERE order_id = $1",
            (event.order_id, _iso(event.occurred_at)),
        )
    ]


def _deal_opened(event: DealOpened, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"INSERT INTO {t['deals']} (sku_id, deal_id, live_id, units_announced, units_allocated, "
            "units_left, per_buyer_cap, started_at, ends_at) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) "
            "ON CONFLICT (sku_id, deal_id) DO NOTHING",
            (
                event.sku_id,
                event.deal_id,
                event.live_id,
                event.units_announced,
                event.units_allocated,
                event.per_buyer_cap,
                _iso(event.started_at),
                _iso(event.ends_at),
            ),
        )
    ]


def _deal_closed(event: DealClosed, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"UPDATE {t['deals']} SET ended_at = $3, end_reason = $4 WHERE sku_id = $1 AND deal_id = $2",
            (event.sku_id, event.deal_id, _iso(event.ended_at), event.reason),
        )
    ]


def _deal_units_returned(event: DealUnitsReturned, t: TableNames) -> Sequence[Statement]:
    return [
        Statement(
            f"UPDATE {t['deals']} SET units_left = $3 WHERE sku_id = $1 AND deal_id = $2",
            (event.sku_id, event.deal_id, event.units_left_after),
        )
    ]


class StockView:
    name = "stock"
    version = 1
    tables = (
        Table(
            "stock",
            "sku_id text PRIMARY KEY, product_id text NOT NULL, brand_id text NOT NULL, "
            "on_hand bigint NOT NULL, reserved bigint NOT NULL, available bigint NOT NULL",
        ),
        Table(
            "deals",
            "sku_id text NOT NULL, deal_id text NOT NULL, live_id text NOT NULL, "
            "units_announced bigint NOT NULL, units_allocated bigint NOT NULL, "
            "units_left bigint NOT NULL, per_buyer_cap bigint NOT NULL, "
            "started_at text NOT NULL, ends_at text NOT NULL, ended_at text, end_reason text, "
            "PRIMARY KEY (sku_id, deal_id)",
        ),
        Table(
            "reservations",
            "order_id text PRIMARY KEY, sku_id text NOT NULL, product_id text, brand_id text, "
            "buyer_id text NOT NULL, quantity bigint NOT NULL, deal_id text, released bigint NOT NULL, "
            "status text NOT NULL, reservation_id text, reason text, detail text, waiting_since text, "
            "answered_at text",
            indexes=("status, sku_id",),
        ),
    )

    _HANDLERS: Mapping[type[DomainEvent], Callable[[Any, TableNames], Sequence[Statement]]] = {
        SkuRegistered: _registered,
        StockReceived: _on_hand,
        StockAdjusted: _on_hand,
        StockReserved: _reserved,
        StockReservationRejected: _rejected,
        StockReleased: _released,
        ReservationDeferred: _deferred,
        DeferredReservationWithdrawn: _withdrawn,
        DealOpened: _deal_opened,
        DealClosed: _deal_closed,
        DealUnitsReturned: _deal_units_returned,
    }

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        return _fold(events, tables, self._HANDLERS)


# --- queries ----------------------------------------------------------------------------------


class Brand(BaseModel):
    brand_id: str
    name: str
    country: str
    default_currency: str
    onboarded_at: datetime


class ListPrice(BaseModel):
    market: str
    price: Money
    set_at: datetime


class StockFigures(BaseModel):
    on_hand: int = Field(description="Units the warehouse holds.")
    reserved: int = Field(description="Units reserved for orders.")
    available: int = Field(description="on_hand - reserved.")


class DealUnits(BaseModel):
    deal_id: str
    live_id: str
    units_announced: int
    units_allocated: int = Field(description="Units the stock could set aside for the deal when it started.")
    units_left: int
    per_buyer_cap: int
    started_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class SkuView(BaseModel):
    sku_id: str
    options: dict[str, str]
    barcode: str | None
    list_prices: list[ListPrice]
    stock: StockFigures | None = Field(
        default=None, description="Shown to the brand's staff and admins only."
    )


class Product(BaseModel):
    product_id: str
    brand_id: str
    title: str
    description: str | None
    created_at: datetime
    skus: list[SkuView]


class SkuStock(StockFigures):
    sku_id: str
    product_id: str
    brand_id: str
    deals: list[DealUnits] = Field(description="Flash deals on the SKU, running ones first.")


ReservationStatus = Literal["waiting", "reserved", "released", "rejected", "withdrawn"]


class Reservation(BaseModel):
    order_id: str
    sku_id: str
    product_id: str | None
    brand_id: str | None
    buyer_id: str
    quantity: int
    released: int
    deal_id: str | None
    status: ReservationStatus
    reservation_id: str | None
    reason: str | None = Field(description="Why it was rejected (the contract's reason code).")
    detail: str | None
    waiting_since: datetime | None
    answered_at: datetime | None


async def brand(db: ReadModelDb, brand_id: str) -> Brand | None:
    rows = await db.fetch(
        "SELECT brand_id, name, country, default_currency, onboarded_at FROM brands WHERE brand_id = $1",
        brand_id,
    )
    return None if not rows else _brand_of(rows[0])


async def brands(db: ReadModelDb, after: str, limit: int) -> list[Brand]:
    rows = await db.fetch(
        "SELECT brand_id, name, country, default_currency, onboarded_at FROM brands "
        "WHERE brand_id > $1 ORDER BY brand_id LIMIT $2",
        after,
        limit,
    )
    return [_brand_of(row) for row in rows]


def _brand_of(row: Row) -> Brand:
    return Brand(brand_id=row[0], name=row[1], country=row[2], default_currency=row[3], onboarded_at=row[4])


async def product_brand(db: ReadModelDb, product_id: str) -> str | None:
    rows = await db.fetch("SELECT brand_id FROM products WHERE product_id = $1", product_id)
    return None if not rows else str(rows[0][0])


async def products(
    db: ReadModelDb, *, brand_id: str | None, product_id: str | None, after: str, limit: int, with_stock: bool
) -> list[Product]:
    """Products in id order after ``after`` (at most ``limit``), of one brand or one id when given."""
    where = (
        "product_id > $1 AND (CAST($2 AS text) IS NULL OR brand_id = $2) "
        "AND (CAST($3 AS text) IS NULL OR product_id = $3)"
    )
    chosen = f"SELECT product_id FROM products WHERE {where} ORDER BY product_id LIMIT $4"
    args = (after, brand_id, product_id, limit)
    queries = [
        Statement(
            "SELECT product_id, brand_id, title, description, created_at FROM products "
            f"WHERE product_id IN ({chosen}) ORDER BY product_id",
            args,
        ),
        Statement(
            "SELECT product_id, sku_id, options, barcode FROM skus "
            f"WHERE product_id IN ({chosen}) ORDER BY product_id, ordinal",
            args,
        ),
        Statement(
            "SELECT sku_id, market, amount, currency, set_at FROM list_prices "
            f"WHERE product_id IN ({chosen}) ORDER BY sku_id, market",
            args,
        ),
    ]
    if with_stock:
        queries.append(
            Statement(
                f"SELECT sku_id, on_hand, reserved, available FROM stock WHERE product_id IN ({chosen})", args
            )
        )
    product_rows, sku_rows, price_rows, *stock_rows = await db.read(queries)
    prices: dict[str, list[ListPrice]] = {}
    for sku_id, market, amount, currency, set_at in price_rows:
        prices.setdefault(sku_id, []).append(
            ListPrice(market=market, price=Money(amount=amount, currency=currency), set_at=set_at)
        )
    stock = {
        row[0]: StockFigures(on_hand=row[1], reserved=row[2], available=row[3])
        for rows in stock_rows
        for row in rows
    }
    skus: dict[str, list[SkuView]] = {}
    for owner, sku_id, options, barcode in sku_rows:
        skus.setdefault(owner, []).append(
            SkuView(
                sku_id=sku_id,
                options=json.loads(options),
                barcode=barcode,
                list_prices=prices.get(sku_id, []),
                stock=stock.get(sku_id, StockFigures(on_hand=0, reserved=0, available=0))
                if with_stock
                else None,
            )
        )
    return [
        Product(
            product_id=row[0],
            brand_id=row[1],
            title=row[2],
            description=row[3],
            created_at=row[4],
            skus=skus.get(row[0], []),
        )
        for row in product_rows
    ]


async def sku_stock(db: ReadModelDb, sku_id: str) -> SkuStock | None:
    stock_rows, deal_rows = await db.read(
        [
            Statement(
                "SELECT sku_id, product_id, brand_id, on_hand, reserved, available FROM stock "
                "WHERE sku_id = $1",
                (sku_id,),
            ),
            Statement(
                "SELECT deal_id, live_id, units_announced, units_allocated, units_left, per_buyer_cap, "
                "started_at, ends_at, ended_at, end_reason FROM deals WHERE sku_id = $1 "
                "ORDER BY (CASE WHEN ended_at IS NULL THEN 0 ELSE 1 END), started_at DESC, deal_id",
                (sku_id,),
            ),
        ]
    )
    if not stock_rows:
        return None
    row = stock_rows[0]
    deals = [
        DealUnits(
            deal_id=d[0],
            live_id=d[1],
            units_announced=d[2],
            units_allocated=d[3],
            units_left=d[4],
            per_buyer_cap=d[5],
            started_at=d[6],
            ends_at=d[7],
            ended_at=d[8],
            end_reason=d[9],
        )
        for d in deal_rows
    ]
    return SkuStock(
        sku_id=row[0],
        product_id=row[1],
        brand_id=row[2],
        on_hand=row[3],
        reserved=row[4],
        available=row[5],
        deals=deals,
    )


_RESERVATION_COLUMNS = (
    "order_id, sku_id, product_id, brand_id, buyer_id, quantity, released, deal_id, status, "
    "reservation_id, reason, detail, waiting_since, answered_at"
)


async def reservations_of_order(db: ReadModelDb, order_id: str) -> list[Reservation]:
    rows = await db.fetch(f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE order_id = $1", order_id)
    return [Reservation(**dict(zip(_RESERVATION_COLUMNS.split(", "), row, strict=True))) for row in rows]


async def waiting_since(db: ReadModelDb) -> dict[str, datetime]:
    """SKUs with orders waiting for their deal, and since when the oldest has waited."""
    oldest: dict[str, datetime] = {}
    for sku_id, since in await db.fetch(
        "SELECT sku_id, waiting_since FROM reservations WHERE status = 'waiting'"
    ):
        moment = datetime.fromisoformat(since)
        oldest[sku_id] = min(moment, oldest.get(sku_id, moment))
    return oldest
