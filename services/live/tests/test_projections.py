"""The ``lives`` projection and its queries over an in-memory SQLite database, the sold-out policy,
and the audience board: pure, in process, milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shopstream_contracts import REGISTRY, Event, Money
from shopstream_contracts.catalog.v1 import StockReceived, StockReleased, StockReserved
from shopstream_contracts.live.v1 import LiveBrand, ShowcaseItem
from shopstream_eventstore import EventMetadata, RecordedEvent
from shopstream_live import queries
from shopstream_live.audience import AudienceBoard, AudienceWindow
from shopstream_live.commands import (
    Actor,
    DealSoldOut,
    EndLive,
    EndSoldOutFlashDeal,
    LiveCommand,
    OfferPaymentTerms,
    PinProduct,
    RecordAudienceSample,
    ScheduleLive,
    StartFlashDeal,
    StartLive,
)
from shopstream_live.domain import LiveDecider, stream_id
from shopstream_live.policies import SoldOutDeals
from shopstream_live.projections import TABLES, LivesProjection
from shopstream_processing import Statement
from shopstream_processing.memory import MemoryReadModel
from shopstream_service.domain import DomainEvent, fold

pytestmark = pytest.mark.unit

DUMPED = [t.name for t in TABLES]

T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
ANA = Actor("ana", frozenset({"influencer"}))
LIVE = "liv_1"
DEAL = "deal_1"


async def project(events: Sequence[RecordedEvent], batch: int) -> MemoryReadModel:
    db = MemoryReadModel()
    await db.transaction([Statement(f"CREATE TABLE {t.name} ({t.columns})") for t in TABLES])
    projection = LivesProjection()
    names = {t.name: t.name for t in TABLES}
    for start in range(0, len(events), batch):
        await db.transaction(projection.apply(events[start : start + batch], names))
    return db


def recorded(events: Sequence[DomainEvent], stream: str, first_position: int) -> list[RecordedEvent]:
    out = []
    for index, event in enumerate(events):
        assert isinstance(event, Event)
        contract = event.contract
        out.append(
            RecordedEvent(
                event_id=uuid.uuid4(),
                stream_id=stream,
                stream_version=index,
                position=first_position + index,
                type=contract.type,
                data_version=contract.version,
                data=event.to_data(),
                metadata=EventMetadata(occurred_at=T0),
                recorded_at=T0,
            )
        )
    return out


def history() -> list[RecordedEvent]:
    """A live with a pin, a deal that sells out through the catalog, terms and two audience windows."""
    decider = LiveDecider()
    stream: list[DomainEvent] = []

    def run(command: LiveCommand) -> None:
        stream.extend(decider.decide(command, fold(decider, stream)))

    run(
        ScheduleLive(
            live_id=LIVE,
            title="Glow night",
            scheduled_start_at=T0,
            host_ids=("ana", "bia"),
            brands=(LiveBrand(brand_id="glow", agreement_id="agr"),),
            showcase=(ShowcaseItem(product_id="serum", brand_id="glow", sku_ids=["s30"]),),
            actor=ANA,
            at=T0 - timedelta(days=1),
        )
    )
    run(StartLive(LIVE, ANA, T0))
    run(PinProduct(LIVE, "serum", ANA, T0 + timedelta(seconds=5), sku_id="s30"))
    run(
        StartFlashDeal(
            LIVE,
            DEAL,
            "serum",
            "s30",
            Money(amount=8990, currency="BRL"),
            3,
            2,
            60_000,
            ANA,
            T0 + timedelta(seconds=10),
        )
    )
    run(OfferPaymentTerms(LIVE, "terms_1", 6, True, ANA, T0 + timedelta(seconds=12), brand_id="glow"))
    run(
        RecordAudienceSample(
            LIVE, T0, T0 + timedelta(seconds=60), 80, 120, T0 + timedelta(seconds=60), joins=130, likes=7
        )
    )
    run(
        RecordAudienceSample(
            LIVE,
            T0 + timedelta(seconds=60),
            T0 + timedelta(seconds=120),
            90,
            100,
            T0 + timedelta(seconds=120),
            joins=5,
            likes=3,
        )
    )
    own = recorded(stream, stream_id(LIVE), 1)
    catalog = recorded(
        [
            StockReceived(
                sku_id="s30",
                product_id="serum",
                brand_id="glow",
                quantity=10,
                on_hand_after=10,
                available_after=10,
                received_by="x",
                occurred_at=T0,
            ),
            _reserved(quantity=2, left=1),
            _reserved(quantity=1, left=0),
            StockReleased(
                sku_id="s30",
                product_id="serum",
                brand_id="glow",
                reservation_id="r",
                order_id="o",
                quantity=1,
                deal_id=DEAL,
                reason="order_cancelled",
                available_after=8,
                occurred_at=T0,
            ),
            _reserved(quantity=1, left=None, deal_id=None),
        ],
        "inbox:shopstream.catalog.stock:s30",
        len(own) + 1,
    )
    sold_out = decider.decide(
        EndSoldOutFlashDeal(LIVE, DEAL, T0 + timedelta(seconds=20)), fold(decider, stream)
    )
    stream += sold_out
    return [*own, *catalog, *recorded(sold_out, stream_id(LIVE), len(own) + len(catalog) + 1)]


def _reserved(*, quantity: int, left: int | None, deal_id: str | None = DEAL) -> StockReserved:
    return StockReserved(
        sku_id="s30",
        product_id="serum",
        brand_id="glow",
        reservation_id=f"res_{uuid.uuid4().hex[:6]}",
        order_id=f"ord_{uuid.uuid4().hex[:6]}",
        buyer_id="buyer",
        quantity=quantity,
        deal_id=deal_id,
        deal_units_left=left,
        available_after=5,
        occurred_at=T0,
    )


async def test_the_projection_gives_the_same_rows_whatever_the_batches() -> None:
    events = history()
    whole = (await project(events, batch=len(events))).dump(DUMPED)
    assert whole == (await project(events, batch=1)).dump(DUMPED)
    assert whole == (await project(events, batch=4)).dump(DUMPED)
    assert whole["lives"]


async def test_a_live_reads_back_with_pin_deals_terms_and_audience() -> None:
    db = await project(history(), batch=3)
    view = await queries.live(db, LIVE, T0 + timedelta(seconds=30))
    assert view is not None
    assert (view.status, view.host_ids, view.started_at) == ("live", ["ana", "bia"], T0)
    assert view.pin == queries.PinView(
        product_id="serum", brand_id="glow", sku_id="s30", pinned_at=T0 + timedelta(seconds=5)
    )
    assert view.active_deals == []  # sold out
    assert [(t.terms_id, t.active) for t in view.payment_terms] == [("terms_1", True)]
    assert view.audience == queries.AudienceView(
        windows=2,
        concurrent_viewers=90,
        peak_concurrent_viewers=120,
        joins=135,
        likes=10,
        last_window_end=T0 + timedelta(seconds=120),
    )
    deal = await queries.deal(db, LIVE, DEAL, T0 + timedelta(seconds=30))
    assert deal is not None
    assert (deal.active, deal.end_reason, deal.units_reserved, deal.units_left) == (False, "sold_out", 2, 0)
    assert deal.ends_at == T0 + timedelta(seconds=70)
    assert await queries.live_of_deal(db, DEAL) == LIVE
    assert await queries.live_of_deal(db, "deal_other") is None


async def test_the_timeline_holds_the_lives_events_in_order_with_their_offsets() -> None:
    db = await project(history(), batch=2)
    entries = await queries.timeline(db, LIVE)
    assert [e.type for e in entries] == [
        "LiveScheduled",
        "LiveStarted",
        "ProductPinned",
        "FlashDealStarted",
        "PaymentTermsOffered",
        "AudienceSampled",
        "AudienceSampled",
        "FlashDealEnded",
    ]
    assert [e.live_offset_ms for e in entries] == [None, None, 5_000, 10_000, 12_000, 60_000, 120_000, 20_000]
    assert entries[3].data["deal_price"] == {"amount": 8990, "currency": "BRL"}
    assert "live_id" not in entries[3].data
    after = await queries.timeline(db, LIVE, after=entries[4].position, event_type="AudienceSampled")
    assert [e.position for e in after] == [entries[5].position, entries[6].position]


async def test_lives_are_listed_by_status_host_and_brand() -> None:
    db = await project(history(), batch=5)
    assert [s.live_id for s in await queries.lives(db, host_id="bia")] == [LIVE]
    assert [s.live_id for s in await queries.lives(db, brand_id="glow", status="live")] == [LIVE]
    assert await queries.lives(db, host_id="zoe") == []
    assert await queries.lives(db, status="ended") == []


async def test_running_deals_past_their_deadline_are_found_for_the_clock() -> None:
    events = [
        e
        for e in history()
        if e.type not in (StockReserved.contract.type,) and "FlashDealEnded" not in e.type
    ]
    db = await project(events, batch=10)
    assert await queries.lives_with_due_deals(db, T0 + timedelta(seconds=69)) == []
    assert await queries.lives_with_due_deals(db, T0 + timedelta(seconds=70)) == [LIVE]
    (deal,) = await queries.deals(db, LIVE, T0 + timedelta(seconds=70), active_only=False)
    assert deal.active is False  # past its deadline even before the end is recorded
    assert await queries.deals(db, LIVE, T0 + timedelta(seconds=69), active_only=True) != []


async def test_an_ended_live_reads_back_ended_without_pin() -> None:
    decider = LiveDecider()
    events = history()
    live_events = [e for e in events if e.stream_id == stream_id(LIVE)]
    state = fold(decider, [_decode(e) for e in live_events])
    ended = recorded(
        decider.decide(EndLive(LIVE, ANA, T0 + timedelta(minutes=5)), state), stream_id(LIVE), 100
    )
    db = await project([*events, *ended], batch=7)
    view = await queries.live(db, LIVE, T0 + timedelta(minutes=6))
    assert view is not None
    assert (view.status, view.pin, view.ended_at) == ("ended", None, T0 + timedelta(minutes=5))
    assert [t.active for t in view.payment_terms] == [False]
    target = await queries.audience_target(db, LIVE)
    assert target is not None
    assert (target.status, target.last_window_end) == ("ended", T0 + timedelta(seconds=120))


def _decode(event: RecordedEvent) -> DomainEvent:
    return REGISTRY.decode(event.type, event.data_version, event.data)


# --- the sold-out policy --------------------------------------------------------------------


def test_the_last_reserved_unit_of_a_deal_calls_for_its_end() -> None:
    policy = SoldOutDeals()
    (last,) = recorded([_reserved(quantity=1, left=0)], "inbox", 1)
    assert policy.react(last) == [DealSoldOut(DEAL)]


@pytest.mark.parametrize(
    "event",
    [
        _reserved(quantity=1, left=1),
        _reserved(quantity=1, left=None, deal_id=None),
        StockReceived(
            sku_id="s30",
            product_id="serum",
            brand_id="glow",
            quantity=1,
            on_hand_after=1,
            available_after=0,
            received_by="x",
            occurred_at=T0,
        ),
    ],
    ids=["units-left", "no-deal", "other-event"],
)
def test_nothing_else_calls_for_a_deals_end(event: StockReserved | StockReceived) -> None:
    (one,) = recorded([event], "inbox", 1)
    assert SoldOutDeals().react(one) == []


# --- the audience board ---------------------------------------------------------------------

BOARD_WINDOW = timedelta(seconds=60)
START = datetime(2025, 5, 1, 20, 0, 20, tzinfo=UTC)


def board() -> AudienceBoard:
    return AudienceBoard(window=BOARD_WINDOW, presence_ttl=timedelta(seconds=30))


def test_the_board_counts_from_the_start_and_keeps_closed_windows_until_recorded() -> None:
    audience = board()
    audience.open(LIVE, started_at=START, last_window_end=None, now=START + timedelta(seconds=1))
    audience.heartbeat(LIVE, "v1", START + timedelta(seconds=2), likes=1)
    audience.close_until(START + timedelta(seconds=100))
    pending = audience.pending()
    assert [(live, w.window_start, w.window_end) for live, w in pending] == [
        (LIVE, START, START + timedelta(seconds=40)),
        (LIVE, START + timedelta(seconds=40), START + timedelta(seconds=100)),
    ]
    audience.recorded(LIVE, pending[0][1])
    assert [w for _, w in audience.pending()] == [pending[1][1]]


def test_opening_twice_keeps_the_running_tally() -> None:
    audience = board()
    audience.open(LIVE, started_at=START, last_window_end=None, now=START)
    audience.heartbeat(LIVE, "v1", START + timedelta(seconds=1))
    audience.open(LIVE, started_at=START, last_window_end=None, now=START + timedelta(seconds=2))
    audience.close_until(START + timedelta(seconds=40))
    ((_, window),) = audience.pending()
    assert window.joins == 1


def test_after_a_gap_longer_than_a_window_counting_resumes_from_now() -> None:
    audience = board()
    last = START + timedelta(seconds=40)
    now = last + timedelta(minutes=10, seconds=5)
    audience.open(LIVE, started_at=START, last_window_end=last, now=now)
    audience.close_until(now + timedelta(seconds=60))
    assert audience.pending()[0][1].window_start == now


def test_a_short_gap_resumes_where_the_recorded_windows_stop() -> None:
    audience = board()
    last = START + timedelta(seconds=40)
    audience.open(LIVE, started_at=START, last_window_end=last, now=last + timedelta(seconds=30))
    audience.close_until(last + timedelta(seconds=60))
    assert audience.pending()[0][1].window_start == last


def test_the_end_of_a_live_closes_its_last_windows_and_forgets_it_once_recorded() -> None:
    audience = board()
    audience.open(LIVE, started_at=START, last_window_end=None, now=START)
    audience.heartbeat(LIVE, "v1", START + timedelta(seconds=50))
    ended_at = START + timedelta(seconds=70)
    audience.end(LIVE, ended_at)
    windows = [w for _, w in audience.pending()]
    assert windows == [
        AudienceWindow(START, START + timedelta(seconds=40), 0, 0, 0, 0),
        AudienceWindow(START + timedelta(seconds=40), ended_at, 1, 1, 1, 0),
    ]
    audience.close_until(ended_at + timedelta(minutes=5))
    assert len(audience.pending()) == 2
    for window in windows:
        audience.recorded(LIVE, window)
    assert audience.live_ids() == []
    audience.end(LIVE, ended_at)
    assert audience.pending() == []
