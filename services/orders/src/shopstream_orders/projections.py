"""Read models of the orders service, and the queries that read them.

- ``order_pricing``: what orders knows of the catalog and the lives, from the events its inbox
  stored — SKUs and their brand, list prices per market, lives with their hosts and brands'
  agreements, flash deals, payment terms. Orders prices from these alone, never by asking
  another service.
- ``orders``: one row per order (status, rejection reason, money, attribution) and one per
  refund; every query of the API reads them.

Both are plain folds of the local store, rebuildable from position 0. Times are stored as
ISO-8601 UTC text; JSON columns are serialised with sorted keys, so a rebuild yields the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shopstream_contracts import REGISTRY, Event, Money
from shopstream_contracts.catalog.v1 import ListPriceSet, ProductCreated
from shopstream_contracts.live.v1 import (
    FlashDealEnded,
    FlashDealStarted,
    LiveCancelled,
    LiveEnded,
    LiveScheduled,
    LiveStarted,
    PaymentTermsOffered,
)
from shopstream_contracts.orders.v1 import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
)
from shopstream_eventstore import RecordedEvent
from shopstream_processing import ReadModelDb, Row, Statement, Table, TableNames

from .events import OrderShipped
from .pricing import DealSnapshot, LiveSnapshot, LiveStatus, SkuSnapshot, TermsSnapshot


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _iso(value: datetime) -> str:
    return value.isoformat()


def _decode(event: RecordedEvent) -> Event:
    return REGISTRY.decode(event.type, event.data_version, event.data)


_PRICING_TYPES = frozenset(
    model.contract.type
    for model in (
        ProductCreated,
        ListPriceSet,
        LiveScheduled,
        LiveStarted,
        LiveEnded,
        LiveCancelled,
        FlashDealStarted,
        FlashDealEnded,
        PaymentTermsOffered,
    )
)


class OrderPricing:
    name = "order_pricing"
    version = 1
    tables = (
        Table("skus", "sku_id text PRIMARY KEY, product_id text NOT NULL, brand_id text NOT NULL"),
        Table(
            "list_prices",
            "sku_id text NOT NULL, market text NOT NULL, amount bigint NOT NULL, currency text NOT NULL, "
            "PRIMARY KEY (sku_id, market)",
        ),
        Table(
            "lives",
            "live_id text PRIMARY KEY, status text NOT NULL, started_at text, host_ids text NOT NULL, "
            "agreements text NOT NULL",
        ),
        Table(
            "flash_deals",
            "deal_id text PRIMARY KEY, live_id text NOT NULL, sku_id text NOT NULL, amount bigint NOT NULL, "
            "currency text NOT NULL, started_at text NOT NULL, ends_at text NOT NULL, ended integer NOT NULL",
            indexes=("live_id, sku_id",),
        ),
        Table(
            "payment_terms",
            "terms_id text PRIMARY KEY, live_id text NOT NULL, brand_id text, "
            "max_installments integer NOT NULL, interest_free integer NOT NULL, min_amount bigint, "
            "min_currency text, valid_until text",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        statements: list[Statement] = []
        for recorded in events:
            if recorded.type in _PRICING_TYPES:
                statements += self._fold(_decode(recorded), tables)
        return statements

    @staticmethod
    def _fold(event: Event, t: TableNames) -> list[Statement]:
        match event:
            case ProductCreated():
                return [
                    Statement(
                        f"INSERT INTO {t['skus']} (sku_id, product_id, brand_id) VALUES ($1, $2, $3) "
                        "ON CONFLICT (sku_id) DO UPDATE SET product_id = excluded.product_id, "
                        "brand_id = excluded.brand_id",
                        (sku.sku_id, event.product_id, event.brand_id),
                    )
                    for sku in event.skus
                ]
            case ListPriceSet():
                return [
                    Statement(
                        f"INSERT INTO {t['list_prices']} (sku_id, market, amount, currency) "
                        "VALUES ($1, $2, $3, $4) ON CONFLICT (sku_id, market) DO UPDATE "
                        "SET amount = excluded.amount, currency = excluded.currency",
                        (event.sku_id, event.market, event.price.amount, event.price.currency),
                    )
                ]
            case LiveScheduled():
                agreements = {brand.brand_id: brand.agreement_id for brand in event.brands}
                return [
                    Statement(
                        f"INSERT INTO {t['lives']} (live_id, status, started_at, host_ids, agreements) "
                        "VALUES ($1, 'scheduled', NULL, $2, $3) ON CONFLICT (live_id) DO NOTHING",
                        (event.live_id, _dumps(event.host_ids), _dumps(agreements)),
                    )
                ]
            case LiveStarted():
                return [
                    Statement(
                        f"UPDATE {t['lives']} SET status = 'on_air', started_at = $2 WHERE live_id = $1",
                        (event.live_id, _iso(event.occurred_at)),
                    )
                ]
            case LiveEnded() | LiveCancelled():
                status = "ended" if isinstance(event, LiveEnded) else "cancelled"
                return [
                    Statement(
                        f"UPDATE {t['lives']} SET status = $2 WHERE live_id = $1", (event.live_id, status)
                    )
                ]
            case FlashDealStarted():
                return [
                    Statement(
                        f"INSERT INTO {t['flash_deals']} "
                        "(deal_id, live_id, sku_id, amount, currency, started_at, ends_at, ended) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, 0) ON CONFLICT (deal_id) DO NOTHING",
                        (
                            event.deal_id,
                            event.live_id,
                            event.sku_id,
                            event.deal_price.amount,
                            event.deal_price.currency,
                            _iso(event.occurred_at),
                            _iso(event.ends_at),
                        ),
                    )
                ]
            case FlashDealEnded():
                return [
                    Statement(f"UPDATE {t['flash_deals']} SET ended = 1 WHERE deal_id = $1", (event.deal_id,))
                ]
            case PaymentTermsOffered():
                minimum = event.min_installment
                return [
                    Statement(
                        f"INSERT INTO {t['payment_terms']} (terms_id, live_id, brand_id, max_installments, "
                        "interest_free, min_amount, min_currency, valid_until) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (terms_id) DO NOTHING",
                        (
                            event.terms_id,
                            event.live_id,
                            event.brand_id,
                            event.max_installments,
                            int(event.interest_free),
                            None if minimum is None else minimum.amount,
                            None if minimum is None else minimum.currency,
                            None if event.valid_until is None else _iso(event.valid_until),
                        ),
                    )
                ]
        return []


_ORDER_TYPES = frozenset(
    [
        *(
            m.contract.type
            for m in (OrderPlaced, OrderConfirmed, OrderRejected, OrderCancelled, OrderRefunded)
        ),
        OrderShipped.type_name,
    ]
)

ORDER_COLUMNS = (
    "order_id, seq, buyer_id, brand_id, live_id, deal_id, sku_id, quantity, currency, total, status, "
    "reason, detail, reservation_id, refunded, returned_units, shipped, cancelled_by, cancel_reason, "
    "placed, placed_at, updated_at"
)


class OrdersView:
    name = "orders"
    version = 1
    tables = (
        Table(
            "orders",
            "order_id text PRIMARY KEY, seq bigint NOT NULL, buyer_id text NOT NULL, brand_id text NOT NULL, "
            "live_id text, deal_id text, sku_id text NOT NULL, quantity bigint NOT NULL, "
            "currency text NOT NULL, total bigint NOT NULL, status text NOT NULL, reason text, detail text, "
            "reservation_id text, refunded bigint NOT NULL, returned_units bigint NOT NULL, "
            "shipped integer NOT NULL, cancelled_by text, cancel_reason text, placed text NOT NULL, "
            "placed_at text NOT NULL, updated_at text NOT NULL",
            indexes=("buyer_id, seq", "brand_id, seq", "live_id, status", "deal_id, status"),
        ),
        Table(
            "order_refunds",
            "refund_id text PRIMARY KEY, order_id text NOT NULL, seq bigint NOT NULL, "
            "amount bigint NOT NULL, currency text NOT NULL, quantity bigint NOT NULL, "
            "refunded_by text NOT NULL, reason text, occurred_at text NOT NULL",
            indexes=("order_id, seq",),
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        statements: list[Statement] = []
        for recorded in events:
            if recorded.type == OrderShipped.type_name:
                shipped = OrderShipped.model_validate(recorded.data)
                statements.append(
                    Statement(
                        f"UPDATE {tables['orders']} SET shipped = 1, updated_at = $2 WHERE order_id = $1",
                        (shipped.order_id, _iso(shipped.occurred_at)),
                    )
                )
            elif recorded.type in _ORDER_TYPES:
                statements += self._fold(_decode(recorded), recorded.position, tables)
        return statements

    @staticmethod
    def _fold(event: Event, position: int, t: TableNames) -> list[Statement]:
        orders = t["orders"]
        match event:
            case OrderPlaced():
                placed = event.to_data()
                return [
                    Statement(
                        f"INSERT INTO {orders} ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                        "$10, 'placed', NULL, NULL, NULL, 0, 0, 0, NULL, NULL, $11, $12, $12) "
                        "ON CONFLICT (order_id) DO NOTHING",
                        (
                            event.order_id,
                            position,
                            event.buyer_id,
                            event.line.brand_id,
                            event.attribution.live_id,
                            event.attribution.flash_deal_id,
                            event.line.sku_id,
                            event.line.quantity,
                            event.total.currency,
                            event.total.amount,
                            _dumps(placed),
                            _iso(event.occurred_at),
                        ),
                    )
                ]
            case OrderConfirmed():
                return [
                    Statement(
                        f"UPDATE {orders} SET status = 'confirmed', reservation_id = $2, updated_at = $3 "
                        "WHERE order_id = $1",
                        (event.order_id, event.reservation_id, _iso(event.occurred_at)),
                    )
                ]
            case OrderRejected():
                return [
                    Statement(
                        f"UPDATE {orders} SET status = 'rejected', reason = $2, detail = $3, updated_at = $4 "
                        "WHERE order_id = $1",
                        (event.order_id, event.reason, event.detail, _iso(event.occurred_at)),
                    )
                ]
            case OrderCancelled():
                return [
                    Statement(
                        f"UPDATE {orders} SET status = 'cancelled', refunded = $2, returned_units = $3, "
                        "cancelled_by = $4, cancel_reason = $5, updated_at = $6 WHERE order_id = $1",
                        (
                            event.order_id,
                            event.refund.amount,
                            event.quantity,
                            event.cancelled_by,
                            event.reason,
                            _iso(event.occurred_at),
                        ),
                    )
                ]
            case OrderRefunded():
                return [
                    Statement(
                        f"UPDATE {orders} SET status = CASE WHEN $2 = 1 THEN 'refunded' ELSE status END, "
                        "refunded = $3, returned_units = returned_units + $4, updated_at = $5 "
                        "WHERE order_id = $1",
                        (
                            event.order_id,
                            int(event.fully_refunded),
                            event.total_refunded.amount,
                            event.quantity,
                            _iso(event.occurred_at),
                        ),
                    ),
                    Statement(
                        f"INSERT INTO {t['order_refunds']} (refund_id, order_id, seq, amount, currency, "
                        "quantity, refunded_by, reason, occurred_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (refund_id) DO NOTHING",
                        (
                            event.refund_id,
                            event.order_id,
                            position,
                            event.amount.amount,
                            event.amount.currency,
                            event.quantity,
                            event.refunded_by,
                            event.reason,
                            _iso(event.occurred_at),
                        ),
                    ),
                ]
        return []


# -- queries -------------------------------------------------------------------------------------


async def sku_snapshot(db: ReadModelDb, sku_id: str, market: str) -> SkuSnapshot | None:
    skus, prices = await db.read(
        [
            Statement("SELECT product_id, brand_id FROM skus WHERE sku_id = $1", (sku_id,)),
            Statement(
                "SELECT amount, currency FROM list_prices WHERE sku_id = $1 AND market = $2", (sku_id, market)
            ),
        ]
    )
    if not skus:
        return None
    (product_id, brand_id), price = skus[0], prices[0] if prices else None
    list_price = None if price is None else Money(amount=int(price[0]), currency=price[1])
    return SkuSnapshot(sku_id, product_id, brand_id, list_price)


@dataclass(frozen=True, slots=True)
class LiveContext:
    """Everything about one live that pricing an order on it needs."""

    live: LiveSnapshot | None
    deals: tuple[DealSnapshot, ...]
    terms: TermsSnapshot | None


async def live_context(db: ReadModelDb, live_id: str, sku_id: str, terms_id: str | None) -> LiveContext:
    lives, deals, terms = await db.read(
        [
            Statement(
                "SELECT status, started_at, host_ids, agreements FROM lives WHERE live_id = $1", (live_id,)
            ),
            Statement(
                "SELECT deal_id, amount, currency, started_at, ends_at, ended FROM flash_deals "
                "WHERE live_id = $1 AND sku_id = $2",
                (live_id, sku_id),
            ),
            Statement(
                "SELECT live_id, brand_id, max_installments, interest_free, min_amount, min_currency, "
                "valid_until FROM payment_terms WHERE terms_id = $1",
                (terms_id or "",),
            ),
        ]
    )
    live = None
    if lives:
        status, started_at, host_ids, agreements = lives[0]
        live = LiveSnapshot(
            live_id,
            _live_status(status),
            None if started_at is None else datetime.fromisoformat(started_at),
            tuple(json.loads(host_ids)),
            json.loads(agreements),
        )
    snapshots = tuple(
        DealSnapshot(
            deal_id,
            Money(amount=int(amount), currency=currency),
            datetime.fromisoformat(started),
            datetime.fromisoformat(ends),
            bool(ended),
        )
        for deal_id, amount, currency, started, ends, ended in deals
    )
    offered = None
    if terms and terms_id is not None:
        terms_live, brand_id, most, free, min_amount, min_currency, until = terms[0]
        offered = TermsSnapshot(
            terms_id,
            terms_live,
            brand_id,
            int(most),
            bool(free),
            None if min_amount is None else Money(amount=int(min_amount), currency=min_currency),
            None if until is None else datetime.fromisoformat(until),
        )
    return LiveContext(live, snapshots, offered)


def _live_status(value: str) -> LiveStatus:
    match value:
        case "scheduled" | "on_air" | "ended" | "cancelled":
            return value
    raise ValueError(f"unknown live status {value!r} in the lives table")


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    seq: int
    buyer_id: str
    brand_id: str
    live_id: str | None
    deal_id: str | None
    sku_id: str
    quantity: int
    currency: str
    total: int
    status: str
    reason: str | None
    detail: str | None
    reservation_id: str | None
    refunded: int
    returned_units: int
    shipped: bool
    cancelled_by: str | None
    cancel_reason: str | None
    placed: OrderPlaced
    placed_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Row) -> OrderRow:
        values = list(row)
        values[16] = bool(values[16])
        values[19] = OrderPlaced.read(json.loads(values[19]))
        return cls(*values)


@dataclass(frozen=True, slots=True)
class RefundRow:
    refund_id: str
    order_id: str
    amount: int
    currency: str
    quantity: int
    refunded_by: str
    reason: str | None
    occurred_at: str


_REFUND_COLUMNS = "refund_id, order_id, amount, currency, quantity, refunded_by, reason, occurred_at"


async def order_with_refunds(db: ReadModelDb, order_id: str) -> tuple[OrderRow, list[RefundRow]] | None:
    orders, refunds = await db.read(
        [
            Statement(f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1", (order_id,)),
            Statement(
                f"SELECT {_REFUND_COLUMNS} FROM order_refunds WHERE order_id = $1 ORDER BY seq", (order_id,)
            ),
        ]
    )
    if not orders:
        return None
    return OrderRow.of(orders[0]), [RefundRow(*row) for row in refunds]


async def orders_page(
    db: ReadModelDb, *, column: str, value: str, status: str | None, before: int | None, limit: int
) -> list[OrderRow]:
    """Orders of one buyer or brand (``column``), newest first, keyset-paginated on ``seq``."""
    if column not in ("buyer_id", "brand_id"):
        raise ValueError(f"orders are not listed by {column!r}")
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE {column} = $1 AND ($2 = '' OR status = $2) "
        "AND seq < $3 ORDER BY seq DESC LIMIT $4",
        value,
        status or "",
        before if before is not None else 2**62,
        limit,
    )
    return [OrderRow.of(row) for row in rows]


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    orders: int
    gross: int
    """Total of every order that was confirmed (whatever happened to it afterwards)."""
    refunded: int
    """Paid back by cancellations and refunds."""
    units_sold: int
    units_returned: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


_SOLD = "('confirmed', 'cancelled', 'refunded')"


async def sales_totals(db: ReadModelDb, *, column: str, value: str) -> list[CurrencyTotals]:
    """Sales of one brand or live, per currency (orders never mix currencies)."""
    if column not in ("brand_id", "live_id"):
        raise ValueError(f"sales are not totalled by {column!r}")
    rows = await db.fetch(
        "SELECT currency, count(*), sum(total), sum(refunded), sum(quantity), sum(returned_units) "
        f"FROM orders WHERE {column} = $1 AND status IN {_SOLD} GROUP BY currency ORDER BY currency",
        value,
    )
    return [CurrencyTotals(c, int(n), int(g), int(r), int(u), int(ret)) for c, n, g, r, u, ret in rows]


@dataclass(frozen=True, slots=True)
class DealTotals:
    deal_id: str
    confirmed_orders: int
    units_sold: int
    buyers: int
    most_units_bought_by_one_buyer: int
    """Units of the deal's confirmed orders of the buyer who bought the most."""
    most_units_held_by_one_buyer: int
    """The same, minus the units that buyer gave back (cancelled or returned)."""


@dataclass(frozen=True, slots=True)
class OrderStats:
    by_status: dict[str, int]
    rejected_by_reason: dict[str, int]
    sales: list[CurrencyTotals]
    deals: list[DealTotals]


async def order_stats(db: ReadModelDb, live_id: str | None) -> OrderStats:
    """Counts for the whole service or one live: the figures a live's report reconciles."""
    scope, args = ("live_id = $1", (live_id,)) if live_id is not None else ("$1 = ''", ("",))
    statuses, reasons, sales, deals = await db.read(
        [
            Statement(f"SELECT status, count(*) FROM orders WHERE {scope} GROUP BY status", args),
            Statement(
                f"SELECT reason, count(*) FROM orders WHERE {scope} AND status = 'rejected' GROUP BY reason",
                args,
            ),
            Statement(
                "SELECT currency, count(*), sum(total), sum(refunded), sum(quantity), sum(returned_units) "
                f"FROM orders WHERE {scope} AND status IN {_SOLD} GROUP BY currency ORDER BY currency",
                args,
            ),
            Statement(
                "SELECT deal_id, sum(orders), sum(bought), count(*), max(bought), max(held) FROM ("
                "SELECT deal_id, buyer_id, count(*) AS orders, sum(quantity) AS bought, "
                "sum(quantity - returned_units) AS held "
                f"FROM orders WHERE {scope} AND deal_id IS NOT NULL AND status IN {_SOLD} "
                "GROUP BY deal_id, buyer_id) AS per_buyer GROUP BY deal_id ORDER BY deal_id",
                args,
            ),
        ]
    )
    return OrderStats(
        by_status={status: int(n) for status, n in statuses},
        rejected_by_reason={reason: int(n) for reason, n in reasons},
        sales=[CurrencyTotals(c, int(n), int(g), int(r), int(u), int(ret)) for c, n, g, r, u, ret in sales],
        deals=[DealTotals(d, int(o), int(u), int(b), int(m), int(h)) for d, o, u, b, m, h in deals],
    )
