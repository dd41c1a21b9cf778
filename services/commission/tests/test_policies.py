"""The order policy (pure) and its handler over a real SQLite store: re-running it, whole or after
a crash half-way, accrues and reverses exactly once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shopstream_commission.commands import AccrueOrderCommission, Actor, ReverseOrderCommission, SignAgreement
from shopstream_commission.domain import AccountState
from shopstream_commission.events import INTERNAL_EVENTS
from shopstream_commission.handlers import CommissionHandlers, account_stream, allocation_stream
from shopstream_commission.policies import OrderCommissionPolicy
from shopstream_commission.values import Share
from shopstream_contracts import Event, Money
from shopstream_contracts.live.v1 import LiveEnded
from shopstream_contracts.orders.v1 import (
    Attribution,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderRefunded,
)
from shopstream_eventstore import EventMetadata, RecordedEvent
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_processing import IssuedCommand, command_id
from shopstream_service.clock import ControlledClock
from shopstream_service.commands import CommandHandler
from shopstream_service.events import EventCatalog

T0 = datetime(2025, 5, 1, 20, tzinfo=UTC)
BRL = "BRL"


def brl(amount: int) -> Money:
    return Money(amount=amount, currency=BRL)


def confirmed(order_id: str = "ord_1", **attribution: Any) -> OrderConfirmed:
    return OrderConfirmed(
        order_id=order_id,
        buyer_id="usr_buyer",
        reservation_id="res_1",
        market="BR",
        line=OrderLine(
            product_id="prd_1",
            sku_id="sku_1",
            brand_id="brd_glow",
            quantity=2,
            unit_price=brl(8990),
            list_price=brl(12990),
            line_total=brl(17980),
        ),
        attribution=Attribution(
            **{
                "channel": "live",
                "live_id": "liv_1",
                "brand_id": "brd_glow",
                "agreement_id": "agr_1",
                "host_ids": ["usr_ana", "usr_bia"],
                "price_source": "flash_deal",
                **attribution,
            }
        ),
        total=brl(17980),
        occurred_at=T0,
    )


def refunded(amount: int, total_refunded: int) -> OrderRefunded:
    return OrderRefunded(
        order_id="ord_1",
        buyer_id="usr_buyer",
        brand_id="brd_glow",
        refund_id=f"rfd_{total_refunded}",
        sku_id="sku_1",
        amount=brl(amount),
        quantity=1,
        total_refunded=brl(total_refunded),
        order_total=brl(17980),
        fully_refunded=total_refunded == 17980,
        refunded_by="usr_brand",
        occurred_at=T0 + timedelta(days=2),
    )


def cancelled() -> OrderCancelled:
    return OrderCancelled(
        order_id="ord_1",
        buyer_id="usr_buyer",
        brand_id="brd_glow",
        sku_id="sku_1",
        quantity=2,
        refund=brl(17980),
        cancelled_by="usr_buyer",
        occurred_at=T0 + timedelta(days=1),
    )


def recorded(event: Event, position: int = 1) -> RecordedEvent:
    contract = event.contract
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=f"inbox:{contract.topic.name}:{event.aggregate_id}",
        stream_version=0,
        position=position,
        type=contract.type,
        data_version=contract.version,
        data=event.to_data(),
        metadata=EventMetadata(occurred_at=T0),
        recorded_at=T0,
    )


policy = OrderCommissionPolicy()


@pytest.mark.unit
def test_a_confirmed_live_order_asks_for_its_commission() -> None:
    assert policy.react(recorded(confirmed())) == [
        AccrueOrderCommission(
            order_id="ord_1",
            live_id="liv_1",
            brand_id="brd_glow",
            agreement_id="agr_1",
            host_ids=("usr_ana", "usr_bia"),
            base=brl(17980),
            sold_at=T0,
        )
    ]


@pytest.mark.unit
def test_a_web_order_and_other_events_ask_for_nothing() -> None:
    web = confirmed(channel="web", live_id=None, agreement_id=None, host_ids=[])
    assert policy.react(recorded(web)) == []
    ended = LiveEnded.model_validate(
        {"live_id": "liv_1", "ended_by": "usr_ana", "live_offset_ms": 10, "occurred_at": T0.isoformat()}
    )
    assert policy.react(recorded(ended)) == []


@pytest.mark.unit
def test_cancellations_and_refunds_ask_for_reversals() -> None:
    assert policy.react(recorded(cancelled())) == [ReverseOrderCommission("ord_1", "order_cancelled")]
    assert policy.react(recorded(refunded(8990, 8990))) == [
        ReverseOrderCommission(
            "ord_1",
            "order_refunded",
            refund_id="rfd_8990",
            total_refunded=brl(8990),
            order_total=brl(17980),
            fully_refunded=False,
        )
    ]


# The handler over a real store -----------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    opened = await SqliteEventStore.open(tmp_path / "commission.sqlite")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def handlers(store: SqliteEventStore) -> CommissionHandlers:
    clock = ControlledClock()
    handler = CommandHandler(store, EventCatalog(INTERNAL_EVENTS), clock, service="commission")
    commission = CommissionHandlers(handler, clock)
    sign = SignAgreement(
        agreement_id="agr_1",
        brand_id="brd_glow",
        influencer_id="usr_ana",
        rate_bps=1200,
        holdback_days=30,
        cohost_shares=(Share("usr_ana", 7000), Share("usr_bia", 3000)),
        effective_from=T0 - timedelta(days=1),
        actor=Actor("usr_ops", brands=frozenset({"brd_glow"})),
        at=clock.now(),
    )
    await commission.sign(sign, command_id=uuid.uuid4(), correlation_id="test")
    return commission


def issued(event: Event) -> IssuedCommand[Any]:
    cause = recorded(event)
    [command] = policy.react(cause)
    return IssuedCommand(command, command_id(policy.name, cause.event_id), cause)


def held(state: AccountState) -> int:
    return state.balance(BRL).held


@pytest.mark.integration
async def test_the_policy_run_twice_accrues_and_reverses_once(handlers: CommissionHandlers) -> None:
    accrue = issued(confirmed())
    await handlers.on_order(accrue)
    await handlers.on_order(accrue)
    ana, bia = await handlers.account("usr_ana"), await handlers.account("usr_bia")
    assert (held(ana), held(bia)) == (1510, 647)
    assert len(ana.accruals) == len(bia.accruals) == 1

    refund = issued(refunded(8990, 8990))
    await handlers.on_order(refund)
    await handlers.on_order(refund)
    ana, bia = await handlers.account("usr_ana"), await handlers.account("usr_bia")
    assert (held(ana), held(bia)) == (755, 324)

    # The same order confirmed again under another event id (a re-publication) changes nothing.
    await handlers.on_order(issued(confirmed()))
    assert held(await handlers.account("usr_ana")) == 755


@pytest.mark.integration
async def test_a_crash_half_way_is_completed_by_the_rerun(
    handlers: CommissionHandlers, store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = store.append
    crashed: list[str] = []

    async def crash_once_on_bia(stream_id: str, *args: Any, **kwargs: Any) -> Any:
        if stream_id == account_stream("usr_bia") and not crashed:
            crashed.append(stream_id)
            raise ConnectionError("the process died here")
        return await append(stream_id, *args, **kwargs)

    monkeypatch.setattr(store, "append", crash_once_on_bia)
    accrue = issued(confirmed())
    # Allocated and Ana's accrual written, then the crash: the policy keeps its checkpoint and re-runs.
    with pytest.raises(ConnectionError):
        await handlers.on_order(accrue)
    assert held(await handlers.account("usr_ana")) == 1510
    assert await store.read_stream(account_stream("usr_bia")) == []

    await handlers.on_order(accrue)
    assert len(await store.read_stream(allocation_stream("ord_1"))) == 1
    assert len(await store.read_stream(account_stream("usr_ana"))) == 1
    assert (held(await handlers.account("usr_ana")), held(await handlers.account("usr_bia"))) == (1510, 647)
