"""The stock policy: which command each event calls for, and that a replay calls for the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shopstream_catalog.commands import CloseDeal, OpenDeal, RegisterSku, ReleaseStock, ReserveStock
from shopstream_catalog.policies import StockPolicy, reservation_id_for
from shopstream_contracts import Event, Money
from shopstream_contracts.catalog.v1 import ProductCreated, Sku, StockReserved
from shopstream_contracts.live.v1 import FlashDealEnded, FlashDealStarted
from shopstream_contracts.orders.v1 import (
    Attribution,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    PaymentPlan,
)
from shopstream_eventstore import EventMetadata, RecordedEvent

pytestmark = pytest.mark.unit

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
policy = StockPolicy()


def recorded(event: Event) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=f"inbox:{event.contract.topic.name}:{event.aggregate_id}",
        stream_version=0,
        position=1,
        type=event.contract.type,
        data=event.to_data(),
        metadata=EventMetadata(occurred_at=T0),
        data_version=event.contract.version,
        recorded_at=T0,
    )


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def placed(price_source: str = "flash_deal", deal: str | None = "deal-1") -> OrderPlaced:
    return OrderPlaced.model_validate(
        {
            "order_id": "ord-1",
            "buyer_id": "usr_ana",
            "market": "BR",
            "line": OrderLine(
                product_id="prd",
                sku_id="sku",
                brand_id="brd",
                quantity=2,
                unit_price=brl(100),
                list_price=brl(200),
                line_total=brl(200),
            ),
            "attribution": Attribution(
                channel="live", live_id="liv", brand_id="brd", price_source=price_source, flash_deal_id=deal
            ),
            "payment_plan": PaymentPlan(method="pix", installments=1, interest_free=True),
            "total": brl(200),
            "occurred_at": T0,
        }
    )


def test_an_order_placed_at_a_deal_price_reserves_from_the_deal() -> None:
    assert policy.react(recorded(placed())) == [
        ReserveStock("sku", "ord-1", "usr_ana", 2, "deal-1", reservation_id_for("ord-1"), T0, T0)
    ]


def test_an_order_at_another_price_reserves_outside_any_deal() -> None:
    (command,) = policy.react(recorded(placed("list", None)))
    assert isinstance(command, ReserveStock)
    assert command.deal_id is None
    (live_priced,) = policy.react(recorded(placed("live", "deal-1")))
    assert isinstance(live_priced, ReserveStock)
    assert live_priced.deal_id is None, "only a flash-deal price takes units from the deal"


def test_a_redelivered_order_calls_for_the_same_reservation() -> None:
    assert policy.react(recorded(placed())) == policy.react(recorded(placed()))


def test_a_cancellation_releases_everything_and_a_refund_its_units() -> None:
    cancelled = OrderCancelled(
        order_id="ord-1",
        buyer_id="usr_ana",
        brand_id="brd",
        sku_id="sku",
        quantity=2,
        refund=brl(200),
        cancelled_by="usr_ana",
        occurred_at=T0,
    )
    assert policy.react(recorded(cancelled)) == [
        ReleaseStock("sku", "ord-1", "order_cancelled", None, None, T0)
    ]

    def refund(quantity: int) -> OrderRefunded:
        return OrderRefunded(
            order_id="ord-1",
            buyer_id="usr_ana",
            brand_id="brd",
            refund_id="rf-1",
            sku_id="sku",
            amount=brl(100),
            quantity=quantity,
            total_refunded=brl(100),
            order_total=brl(200),
            fully_refunded=False,
            refunded_by="usr_ops",
            occurred_at=T0,
        )

    assert policy.react(recorded(refund(1))) == [
        ReleaseStock("sku", "ord-1", "order_refunded", 1, "rf-1", T0)
    ]
    assert policy.react(recorded(refund(0))) == [], "a money-only refund returns no unit"


def test_flash_deals_open_and_close_on_their_sku() -> None:
    started = FlashDealStarted(
        live_id="liv",
        deal_id="deal-1",
        brand_id="brd",
        product_id="prd",
        sku_id="sku",
        deal_price=brl(100),
        units=50,
        per_buyer_cap=2,
        duration_ms=600_000,
        ends_at=T0 + timedelta(minutes=10),
        started_by="usr_host",
        live_offset_ms=1_000,
        occurred_at=T0,
    )
    assert policy.react(recorded(started)) == [
        OpenDeal("sku", "deal-1", "liv", 50, 2, T0, T0 + timedelta(minutes=10), T0)
    ]
    ended = FlashDealEnded(
        live_id="liv", deal_id="deal-1", sku_id="sku", reason="sold_out", live_offset_ms=2_000, occurred_at=T0
    )
    assert policy.react(recorded(ended)) == [CloseDeal("sku", "deal-1", "sold_out", T0, T0)]


def test_a_new_product_registers_each_sku() -> None:
    created = ProductCreated(
        product_id="prd",
        brand_id="brd",
        title="Serum",
        skus=[Sku(sku_id="prd-1"), Sku(sku_id="prd-2", options={"size": "M"})],
        created_by="usr_ops",
        occurred_at=T0,
    )
    assert policy.react(recorded(created)) == [
        RegisterSku("prd-1", "prd", "brd", T0),
        RegisterSku("prd-2", "prd", "brd", T0),
    ]


def test_other_events_call_for_nothing() -> None:
    reserved = StockReserved(
        sku_id="sku",
        product_id="prd",
        brand_id="brd",
        reservation_id="res",
        order_id="ord-1",
        buyer_id="usr_ana",
        quantity=1,
        available_after=0,
        occurred_at=T0,
    )
    assert policy.react(recorded(reserved)) == []
