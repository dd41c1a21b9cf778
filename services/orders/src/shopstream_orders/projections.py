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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shopstream_contracts import REGISTRY, Event, Money
from shopstream_contracts.base import ContractModel
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
    Attribution,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    PaymentPlan,
)
from shopstream_eventstore import RawEvent, RecordedEvent
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
        # Callers of ``apply`` (time travel, tests) run a batch in one transaction and have no
        # event-by-event retry: no folding here (see _fold), only the fast read of payloads.
        return self._fold(
            ((e.position, e.type, e.data_version, e.data) for e in events if e.type in _ORDER_TYPES),
            tables,
            fold=False,
        )

    def apply_raw(self, events: Sequence[RawEvent], tables: TableNames) -> Sequence[Statement]:
        """``apply`` for events as stored: only this view's event types are parsed at all."""
        # A generator: each payload is parsed, folded and dropped in turn, so a page's parsed
        # JSON is never alive at once (young objects that outlive a few allocations get promoted
        # and make the collector's full passes frequent and long).
        return self._fold(
            (
                (e.position, e.type, e.data_version, orjson.loads(e.data))
                for e in events
                if e.type in _ORDER_TYPES
            ),
            tables,
            fold=True,
        )

    @staticmethod
    def _fold(
        events: Iterable[tuple[int, str, int, Mapping[str, Any]]], t: TableNames, *, fold: bool
    ) -> list[Statement]:
        """One batch's statements; with ``fold``, set-based where that gives the same rows.

        An order placed in this batch becomes one row in Python: its later events in the batch
        update that row, and it is written by a single INSERT (all of them one executemany) instead
        of an INSERT and an UPDATE per event. Such a folded INSERT must meet no existing row (the
        unfolded INSERT would have done nothing and the UPDATEs would have changed that row), so it
        fails the transaction on a conflict; the runner then applies the batch one event per
        transaction, unfolded. Events of orders placed in earlier batches are UPDATEs as before,
        in event order, ahead of the INSERTs (which touch other rows). Refund rows are a separate
        table, inserted in event order. Without ``fold`` every event is its own statement, in
        event order, as the view always wrote them.
        """
        orders, refunds = t["orders"], t["order_refunds"]
        pending: dict[str, list[Any]] = {}
        folded: set[str] = set()
        in_order: list[Statement] = []  # in event order
        refund_rows: list[Statement] = []
        for position, kind, version, data in events:
            if kind == _TYPE_SHIPPED:
                shipped = OrderShipped.model_validate(data)
                order_id, at = shipped.order_id, _iso(shipped.occurred_at)
                row = pending.get(order_id)
                if row is None:
                    in_order.append(
                        Statement(
                            f"UPDATE {orders} SET shipped = 1, updated_at = $2 WHERE order_id = $1",
                            (order_id, at),
                        )
                    )
                else:
                    row[_SHIPPED_FLAG], row[_UPDATED_AT] = 1, at
                    folded.add(order_id)
                continue
            data, at = _canonical(kind, version, data)
            order_id = data["order_id"]
            if kind == _TYPE_PLACED:
                if not fold:
                    in_order.append(Statement(_INSERT.format(orders), tuple(_placed_row(data, position, at))))
                elif order_id not in pending:
                    pending[order_id] = _placed_row(data, position, at)
                continue
            row = pending.get(order_id)
            if row is not None:
                folded.add(order_id)
            if kind == _TYPE_CONFIRMED:
                if row is None:
                    in_order.append(
                        Statement(
                            f"UPDATE {orders} SET status = 'confirmed', reservation_id = $2, updated_at = $3 "
                            "WHERE order_id = $1",
                            (order_id, data["reservation_id"], at),
                        )
                    )
                else:
                    row[_STATUS], row[_RESERVATION], row[_UPDATED_AT] = (
                        "confirmed",
                        data["reservation_id"],
                        at,
                    )
            elif kind == _TYPE_REJECTED:
                reason, detail = data["reason"], data.get("detail")
                if row is None:
                    in_order.append(
                        Statement(
                            f"UPDATE {orders} SET status = 'rejected', reason = $2, detail = $3, "
                            "updated_at = $4 WHERE order_id = $1",
                            (order_id, reason, detail, at),
                        )
                    )
                else:
                    row[_STATUS], row[_REASON], row[_DETAIL], row[_UPDATED_AT] = (
                        "rejected",
                        reason,
                        detail,
                        at,
                    )
            elif kind == _TYPE_CANCELLED:
                refunded, quantity = data["refund"]["amount"], data["quantity"]
                by, why = data["cancelled_by"], data.get("reason")
                if row is None:
                    in_order.append(
                        Statement(
                            f"UPDATE {orders} SET status = 'cancelled', refunded = $2, returned_units = $3, "
                            "cancelled_by = $4, cancel_reason = $5, updated_at = $6 WHERE order_id = $1",
                            (order_id, refunded, quantity, by, why, at),
                        )
                    )
                else:
                    row[_STATUS], row[_REFUNDED], row[_RETURNED] = "cancelled", refunded, quantity
                    row[_CANCELLED_BY], row[_CANCEL_REASON], row[_UPDATED_AT] = by, why, at
            elif kind == _TYPE_REFUNDED:
                fully, total = int(data["fully_refunded"]), data["total_refunded"]["amount"]
                quantity, amount = data["quantity"], data["amount"]
                if row is None:
                    in_order.append(
                        Statement(
                            f"UPDATE {orders} SET status = CASE WHEN $2 = 1 THEN 'refunded' ELSE status END, "
                            "refunded = $3, returned_units = returned_units + $4, updated_at = $5 "
                            "WHERE order_id = $1",
                            (order_id, fully, total, quantity, at),
                        )
                    )
                else:
                    if fully == 1:
                        row[_STATUS] = "refunded"
                    row[_REFUNDED], row[_RETURNED], row[_UPDATED_AT] = total, row[_RETURNED] + quantity, at
                refund_rows.append(
                    Statement(
                        f"INSERT INTO {refunds} (refund_id, order_id, seq, amount, currency, "
                        "quantity, refunded_by, reason, occurred_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (refund_id) DO NOTHING",
                        (
                            data["refund_id"],
                            order_id,
                            position,
                            amount["amount"],
                            amount["currency"],
                            quantity,
                            data["refunded_by"],
                            data.get("reason"),
                            at,
                        ),
                    )
                )
        # Folded, then plain: two runs of one SQL each, whatever their mix in the batch.
        insert_folded, insert = _INSERT_FOLDED.format(orders), _INSERT.format(orders)
        inserts = [Statement(insert_folded, tuple(row)) for key, row in pending.items() if key in folded]
        inserts += [Statement(insert, tuple(row)) for key, row in pending.items() if key not in folded]
        return [*in_order, *inserts, *refund_rows]


# -- the fast read of stored order events ---------------------------------------------------------
#
# Stored events of the latest version were validated when written. When such a payload is already
# in its canonical form (exactly what ``Event.to_data()`` gives: every field present, no other,
# times as UTC ``...Z`` text), the view reads its fields straight from the JSON: same values,
# same ``placed`` bytes as the pydantic round trip, at a fraction of its cost. Anything else
# (an older version to upcast, a producer's extra fields, a missing default, another time
# zone...) goes through ``REGISTRY.decode`` and ``to_data()`` as before.

_TYPE_PLACED = OrderPlaced.contract.type
_TYPE_CONFIRMED = OrderConfirmed.contract.type
_TYPE_REJECTED = OrderRejected.contract.type
_TYPE_CANCELLED = OrderCancelled.contract.type
_TYPE_REFUNDED = OrderRefunded.contract.type
_TYPE_SHIPPED = OrderShipped.type_name

_INSERT = (
    "INSERT INTO {} (" + ORDER_COLUMNS + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
    "$13, $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT (order_id) DO NOTHING"
)
_INSERT_FOLDED = _INSERT.replace(
    # seq is NOT NULL: an existing row makes the statement fail (see OrdersView._fold).
    "DO NOTHING",
    "DO UPDATE SET seq = NULL",
)
# Where the columns that later events change sit in a row of ORDER_COLUMNS.
_COLUMN = {name: n for n, name in enumerate(ORDER_COLUMNS.split(", "))}
_STATUS, _REASON, _DETAIL, _RESERVATION = (
    _COLUMN[c] for c in ("status", "reason", "detail", "reservation_id")
)
_REFUNDED, _RETURNED, _SHIPPED_FLAG = (_COLUMN[c] for c in ("refunded", "returned_units", "shipped"))
_CANCELLED_BY, _CANCEL_REASON, _UPDATED_AT = (
    _COLUMN[c] for c in ("cancelled_by", "cancel_reason", "updated_at")
)

_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(?!000000)\d{6})?Z")
"""How ``to_data()`` writes a time: UTC, microseconds only when not zero."""


def _keys(model: type[ContractModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


_SHAPE_PLACED = (
    _keys(OrderPlaced),
    _keys(OrderLine),
    _keys(Attribution),
    _keys(PaymentPlan),
    _keys(Money),
)
_LATEST = {kind: REGISTRY.latest(kind).contract.version for kind in _ORDER_TYPES if kind != _TYPE_SHIPPED}


def _utc_iso(text: object) -> str | None:
    """``_iso`` of the time ``text`` is the canonical form of, None when it is not one."""
    if type(text) is not str or not _UTC_TEXT.fullmatch(text):
        return None
    try:
        datetime.fromisoformat(text)  # a real date and time of day
    except ValueError:
        return None
    return text[:-1] + "+00:00"


def _is_canonical_placed(data: Mapping[str, Any]) -> bool:
    placed, line_keys, attribution_keys, plan_keys, money = _SHAPE_PLACED
    try:
        line = data["line"]
        return (
            data.keys() == placed
            and line.keys() == line_keys
            and line["unit_price"].keys() == money
            and line["list_price"].keys() == money
            and line["line_total"].keys() == money
            and data["attribution"].keys() == attribution_keys
            and type(data["attribution"]["host_ids"]) is list
            and data["payment_plan"].keys() == plan_keys
            and data["total"].keys() == money
        )
    except (AttributeError, KeyError, TypeError):
        return False


def _canonical(kind: str, version: int, data: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The event's canonical data and its ``occurred_at`` as ``_iso`` writes it."""
    if (
        version == _LATEST[kind]
        and type(data) is dict
        and (kind != _TYPE_PLACED or _is_canonical_placed(data))
    ):
        at = _utc_iso(data.get("occurred_at"))
        if at is not None:
            return data, at
    event = REGISTRY.decode(kind, version, data)
    canonical = event.to_data()
    at = _utc_iso(canonical["occurred_at"])
    if at is None:  # to_data() always writes the canonical form
        raise AssertionError(f"{kind}: to_data() wrote occurred_at as {canonical['occurred_at']!r}")
    return canonical, at


def _placed_row(data: Mapping[str, Any], position: int, at: str) -> list[Any]:
    line, attribution, total = data["line"], data["attribution"], data["total"]
    placed = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    # Byte for byte what _dumps (the stdlib's json, ASCII-escaped) writes, when it is ASCII.
    text = placed.decode() if placed.isascii() else _dumps(data)
    return [
        data["order_id"],
        position,
        data["buyer_id"],
        line["brand_id"],
        attribution["live_id"],
        attribution["flash_deal_id"],
        line["sku_id"],
        line["quantity"],
        total["currency"],
        total["amount"],
        "placed",
        None,
        None,
        None,
        0,
        0,
        0,
        None,
        None,
        text,
        at,
        at,
    ]


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
