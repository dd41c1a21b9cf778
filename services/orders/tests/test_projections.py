"""The read models and their queries, folded into an in-memory SQLite database, and the saga
policy. The SQL is the real SQL; only the database is a fake (one connection, no file)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shopstream_contracts import Event, Money
from shopstream_contracts.catalog.v1 import (
    ListPriceSet,
    ProductCreated,
    Sku,
    StockReceived,
    StockReservationRejected,
    StockReserved,
)
from shopstream_contracts.live.v1 import (
    FlashDealEnded,
    FlashDealStarted,
    LiveBrand,
    LiveEnded,
    LiveScheduled,
    LiveStarted,
    PaymentTermsOffered,
)
from shopstream_contracts.orders.v1 import Attribution, OrderLine, OrderPlaced, PaymentPlan
from shopstream_eventstore import EventMetadata, RecordedEvent
from shopstream_orders.commands import (
    Actor,
    CancelOrder,
    ConfirmOrder,
    OrderCommand,
    RefundOrder,
    RejectOrder,
)
from shopstream_orders.domain import OrderDecider, OrderState
from shopstream_orders.events import OrderShipped
from shopstream_orders.policies import OrderSaga
from shopstream_orders.projections import (
    OrderPricing,
    OrdersView,
    live_context,
    order_stats,
    order_with_refunds,
    orders_page,
    sales_totals,
    sku_snapshot,
)
from shopstream_processing import Row, Statement
from shopstream_processing.readmodel import sqlite_sql
from shopstream_service.domain import DomainEvent

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
STAFF = Actor("usr_ops", brands=frozenset({"brd_glow"}))


class MemoryDb:
    """A ``ReadModelDb`` over one in-memory SQLite connection, for tests."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)

    async def transaction(self, statements: Sequence[Statement]) -> None:
        self.conn.execute("BEGIN")
        for statement in statements:
            self.conn.execute(sqlite_sql(statement.sql), statement.args)
        self.conn.execute("COMMIT")

    async def read(self, queries: Sequence[Statement]) -> list[list[Row]]:
        return [self.conn.execute(sqlite_sql(q.sql), q.args).fetchall() for q in queries]

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self.conn.execute(sqlite_sql(sql), args).fetchall()

    async def close(self) -> None:
        self.conn.close()

    def dump(self, tables: Sequence[str]) -> dict[str, list[Row]]:
        return {t: sorted(self.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


class Folder:
    """Feeds recorded events to both projections, with positions like a store's."""

    def __init__(self) -> None:
        self.db = MemoryDb()
        self.projections = (OrderPricing(), OrdersView())
        self.names = {t.name: t.name for p in self.projections for t in p.tables}
        for projection in self.projections:
            for table in projection.tables:
                self.db.conn.execute(f"CREATE TABLE {table.name} ({table.columns})")
        self.recorded: list[RecordedEvent] = []

    def record(self, *events: DomainEvent, stream: str = "s") -> None:
        for event in events:
            kind = event.contract.type if isinstance(event, Event) else type(event).type_name
            self.recorded.append(
                RecordedEvent(
                    event_id=uuid.uuid4(),
                    stream_id=stream,
                    stream_version=0,
                    position=len(self.recorded) + 1,
                    type=kind,
                    data_version=1,
                    data=event.to_data(),
                    metadata=EventMetadata(occurred_at=T0),
                    recorded_at=T0,
                )
            )

    async def fold(self, batch_size: int = 1000) -> MemoryDb:
        for start in range(0, len(self.recorded), batch_size):
            batch = self.recorded[start : start + batch_size]
            for projection in self.projections:
                await self.db.transaction(projection.apply(batch, self.names))
        return self.db


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def a_placed_order(
    order_id: str = "ord_1", *, buyer: str = "usr_buyer", quantity: int = 1, unit: int = 8990
) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        buyer_id=buyer,
        market="BR",
        line=OrderLine(
            product_id="prd_serum",
            sku_id="sku_30",
            brand_id="brd_glow",
            quantity=quantity,
            unit_price=brl(unit),
            list_price=brl(12990),
            line_total=brl(unit * quantity),
        ),
        attribution=Attribution(
            channel="live",
            live_id="liv_1",
            brand_id="brd_glow",
            agreement_id="agr_1",
            host_ids=["usr_ana"],
            price_source="flash_deal",
            flash_deal_id="deal_1",
            live_offset_ms=1000,
        ),
        payment_plan=PaymentPlan(method="pix", installments=1, interest_free=True),
        total=brl(unit * quantity),
        occurred_at=T0,
    )


def catalog_and_live() -> list[Event]:
    return [
        ProductCreated(
            product_id="prd_serum",
            brand_id="brd_glow",
            title="Serum",
            skus=[Sku(sku_id="sku_30"), Sku(sku_id="sku_50")],
            created_by="usr_ops",
            occurred_at=T0,
        ),
        ListPriceSet(
            product_id="prd_serum",
            sku_id="sku_30",
            brand_id="brd_glow",
            market="BR",
            price=brl(12990),
            set_by="usr_ops",
            occurred_at=T0,
        ),
        ListPriceSet(
            product_id="prd_serum",
            sku_id="sku_30",
            brand_id="brd_glow",
            market="BR",
            price=brl(11990),
            previous_price=brl(12990),
            set_by="usr_ops",
            occurred_at=T0,
        ),
        LiveScheduled(
            live_id="liv_1",
            title="Glow week",
            scheduled_start_at=T0,
            host_ids=["usr_ana", "usr_bia"],
            brands=[LiveBrand(brand_id="brd_glow", agreement_id="agr_1")],
            scheduled_by="usr_ana",
            occurred_at=T0,
        ),
        LiveStarted(live_id="liv_1", started_by="usr_ana", occurred_at=T0 + timedelta(minutes=1)),
        FlashDealStarted(
            live_id="liv_1",
            deal_id="deal_1",
            brand_id="brd_glow",
            product_id="prd_serum",
            sku_id="sku_30",
            deal_price=brl(8990),
            units=40,
            per_buyer_cap=2,
            duration_ms=300_000,
            ends_at=T0 + timedelta(minutes=7),
            started_by="usr_ana",
            live_offset_ms=60_000,
            occurred_at=T0 + timedelta(minutes=2),
        ),
        PaymentTermsOffered(
            live_id="liv_1",
            terms_id="terms_1",
            max_installments=6,
            interest_free=True,
            min_installment=brl(1000),
            offered_by="usr_ana",
            live_offset_ms=1,
            occurred_at=T0,
        ),
    ]


# -- pricing read model --------------------------------------------------------------------------


async def test_the_pricing_model_holds_what_pricing_needs() -> None:
    folder = Folder()
    folder.record(*catalog_and_live())
    db = await folder.fold()
    sku = await sku_snapshot(db, "sku_30", "BR")
    assert sku is not None
    assert (sku.product_id, sku.brand_id, sku.list_price) == ("prd_serum", "brd_glow", brl(11990))
    other = await sku_snapshot(db, "sku_50", "BR")
    assert other is not None
    assert other.list_price is None
    assert await sku_snapshot(db, "sku_nope", "BR") is None

    context = await live_context(db, "liv_1", "sku_30", "terms_1")
    assert context.live is not None
    assert (context.live.status, context.live.started_at) == ("on_air", T0 + timedelta(minutes=1))
    assert (context.live.host_ids, dict(context.live.agreements)) == (
        ("usr_ana", "usr_bia"),
        {"brd_glow": "agr_1"},
    )
    (deal,) = context.deals
    assert (deal.deal_id, deal.price, deal.ends_at, deal.ended) == (
        "deal_1",
        brl(8990),
        T0 + timedelta(minutes=7),
        False,
    )
    assert context.terms is not None
    assert (context.terms.max_installments, context.terms.interest_free, context.terms.brand_id) == (
        6,
        True,
        None,
    )
    assert (context.terms.min_installment, context.terms.valid_until) == (brl(1000), None)
    assert (await live_context(db, "liv_1", "sku_50", None)).deals == ()
    assert (await live_context(db, "liv_nope", "sku_30", None)).live is None


async def test_deals_and_lives_end() -> None:
    folder = Folder()
    folder.record(
        *catalog_and_live(),
        FlashDealEnded(
            live_id="liv_1",
            deal_id="deal_1",
            sku_id="sku_30",
            reason="sold_out",
            live_offset_ms=9,
            occurred_at=T0,
        ),
        LiveEnded(live_id="liv_1", ended_by="usr_ana", live_offset_ms=10, occurred_at=T0),
    )
    context = await live_context(await folder.fold(), "liv_1", "sku_30", None)
    assert context.live is not None
    assert context.live.status == "ended"
    assert [d.ended for d in context.deals] == [True]


# -- orders read model ---------------------------------------------------------------------------

decider = OrderDecider()


def history(*commands: OrderCommand, placed: OrderPlaced | None = None) -> list[DomainEvent]:
    """The events of one order: its placement, then what each command decided."""
    events: list[DomainEvent] = [placed or a_placed_order()]
    state: OrderState = decider.evolve(None, events[0])
    for command in commands:
        for event in decider.decide(command, state):
            events.append(event)
            state = decider.evolve(state, event)
    return events


async def test_an_order_row_follows_its_life() -> None:
    placed = a_placed_order(order_id="ord_1", quantity=3, unit=3333)
    folder = Folder()
    folder.record(
        *history(
            ConfirmOrder("ord_1", "res_1", T0),
            RefundOrder("ord_1", "rfd_1", STAFF, 1, None, "damaged", T0 + timedelta(days=1)),
            RefundOrder("ord_1", "rfd_2", STAFF, 0, 6666, None, T0 + timedelta(days=2)),
            placed=placed,
        ),
        OrderShipped(order_id="ord_1", shipped_by="usr_ops", occurred_at=T0 + timedelta(days=3)),
    )
    found = await order_with_refunds(await folder.fold(), "ord_1")
    assert found is not None
    row, refunds = found
    assert (row.status, row.reservation_id, row.refunded, row.returned_units, row.shipped) == (
        "refunded",
        "res_1",
        9999,
        1,
        True,
    )
    assert row.placed == placed
    assert [(r.refund_id, r.amount, r.quantity, r.reason) for r in refunds] == [
        ("rfd_1", 3333, 1, "damaged"),
        ("rfd_2", 6666, 0, None),
    ]


async def test_rejections_and_cancellations_are_recorded_with_their_reasons() -> None:
    folder = Folder()
    folder.record(
        *history(
            RejectOrder("ord_r", "per_buyer_cap_reached", "cap is 2", T0), placed=a_placed_order("ord_r")
        )
    )
    folder.record(
        *history(
            ConfirmOrder("ord_c", "res", T0),
            CancelOrder("ord_c", Actor("usr_buyer"), "changed my mind", T0),
            placed=a_placed_order("ord_c", quantity=2),
        )
    )
    db = await folder.fold()
    rejected = await order_with_refunds(db, "ord_r")
    cancelled = await order_with_refunds(db, "ord_c")
    assert rejected is not None
    assert cancelled is not None
    assert (rejected[0].status, rejected[0].reason, rejected[0].detail) == (
        "rejected",
        "per_buyer_cap_reached",
        "cap is 2",
    )
    row = cancelled[0]
    assert (row.status, row.cancelled_by, row.cancel_reason, row.refunded, row.returned_units) == (
        "cancelled",
        "usr_buyer",
        "changed my mind",
        row.total,
        2,
    )


async def test_listings_totals_and_stats() -> None:
    folder = Folder()
    specs: list[tuple[str, str, int, OrderCommand | None]] = [
        ("ord_a1", "usr_a", 2, ConfirmOrder("ord_a1", "r1", T0)),
        ("ord_a2", "usr_a", 1, ConfirmOrder("ord_a2", "r2", T0)),
        ("ord_b1", "usr_b", 1, ConfirmOrder("ord_b1", "r3", T0)),
        ("ord_b2", "usr_b", 1, RejectOrder("ord_b2", "deal_cap_reached", None, T0)),
        ("ord_c1", "usr_c", 1, RejectOrder("ord_c1", "deal_cap_reached", None, T0)),
        ("ord_c2", "usr_c", 1, None),
    ]
    for order_id, buyer, quantity, answer in specs:
        placed = a_placed_order(order_id, buyer=buyer, quantity=quantity, unit=1000)
        folder.record(*history(*([answer] if answer else []), placed=placed))
    db = await folder.fold()

    page = await orders_page(db, column="buyer_id", value="usr_a", status=None, before=None, limit=1)
    assert [o.order_id for o in page] == ["ord_a2"]
    rest = await orders_page(db, column="buyer_id", value="usr_a", status=None, before=page[-1].seq, limit=10)
    assert [o.order_id for o in rest] == ["ord_a1"]
    rejected = await orders_page(
        db, column="brand_id", value="brd_glow", status="rejected", before=None, limit=10
    )
    assert [o.order_id for o in rejected] == ["ord_c1", "ord_b2"]

    (totals,) = await sales_totals(db, column="brand_id", value="brd_glow")
    assert (totals.currency, totals.orders, totals.gross, totals.units_sold, totals.net) == (
        "BRL",
        3,
        4000,
        4,
        4000,
    )

    stats = await order_stats(db, "liv_1")
    assert stats.by_status == {"confirmed": 3, "rejected": 2, "placed": 1}
    assert stats.rejected_by_reason == {"deal_cap_reached": 2}
    (deal,) = stats.deals
    assert (deal.deal_id, deal.confirmed_orders, deal.units_sold, deal.buyers) == ("deal_1", 3, 4, 2)
    assert (deal.most_units_bought_by_one_buyer, deal.most_units_held_by_one_buyer) == (3, 3)
    assert (await order_stats(db, None)).by_status == stats.by_status
    assert (await order_stats(db, "liv_other")).by_status == {}


async def test_events_it_does_not_need_change_nothing() -> None:
    folder = Folder()
    folder.record(
        StockReceived(
            sku_id="sku_30",
            product_id="prd_serum",
            brand_id="brd_glow",
            quantity=5,
            on_hand_after=5,
            available_after=5,
            received_by="usr_ops",
            occurred_at=T0,
        )
    )
    db = await folder.fold()
    assert all(rows == [] for rows in db.dump(list(folder.names)).values())


async def test_the_same_events_in_any_batches_give_the_same_rows() -> None:
    events: list[DomainEvent] = [*catalog_and_live()]
    events += history(
        ConfirmOrder("ord_1", "r", T0),
        RefundOrder("ord_1", "rf", STAFF, 1, None, None, T0),
        placed=a_placed_order("ord_1", quantity=2),
    )
    events += history(RejectOrder("ord_2", "sold_out", None, T0), placed=a_placed_order("ord_2"))
    dumps = []
    for batch_size in (1, 3, 1000):
        folder = Folder()
        folder.record(*events)
        dumps.append((await folder.fold(batch_size)).dump(list(folder.names)))
    assert dumps[0] == dumps[1] == dumps[2]


# -- the saga policy -----------------------------------------------------------------------------


def recorded(event: Event) -> RecordedEvent:
    folder = Folder()
    folder.record(event)
    return folder.recorded[0]


def test_a_reservation_confirms_and_a_refusal_rejects_at_the_answers_time() -> None:
    at = T0 + timedelta(seconds=3)
    reserved = StockReserved(
        sku_id="sku_30",
        product_id="prd_serum",
        brand_id="brd_glow",
        reservation_id="res_9",
        order_id="ord_9",
        buyer_id="usr_a",
        quantity=1,
        available_after=3,
        occurred_at=at,
    )
    refused = StockReservationRejected(
        sku_id="sku_30",
        order_id="ord_8",
        buyer_id="usr_a",
        quantity=3,
        reason="insufficient_stock",
        detail="2 left",
        occurred_at=at,
    )
    saga = OrderSaga()
    assert saga.react(recorded(reserved)) == [ConfirmOrder("ord_9", "res_9", at)]
    assert saga.react(recorded(refused)) == [RejectOrder("ord_8", "insufficient_stock", "2 left", at)]


def test_the_saga_ignores_every_other_event() -> None:
    saga = OrderSaga()
    assert all(saga.react(recorded(event)) == [] for event in catalog_and_live())
    assert saga.react(recorded(a_placed_order())) == []
