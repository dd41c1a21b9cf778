"""The live session decider, given/when/then: given past events, when a command, then events or a refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream_contracts import Money
from shopstream_contracts.live.v1 import (
    AudienceSampled,
    FlashDealEnded,
    FlashDealStarted,
    LiveBrand,
    LiveCancelled,
    LiveEnded,
    LiveRescheduled,
    LiveScheduled,
    LiveStarted,
    PaymentTermsOffered,
    ProductPinned,
    ProductUnpinned,
    ShowcaseItem,
)
from shopstream_live.commands import (
    Actor,
    CancelFlashDeal,
    CancelLive,
    EndLive,
    EndSoldOutFlashDeal,
    ExpireFlashDeals,
    LiveCommand,
    OfferPaymentTerms,
    PinProduct,
    RecordAudienceSample,
    RescheduleLive,
    ScheduleLive,
    StartFlashDeal,
    StartLive,
    UnpinProduct,
)
from shopstream_live.domain import LiveDecider, LiveState
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound, fold

pytestmark = pytest.mark.unit

DECIDER = LiveDecider()
LIVE = "liv_1"
T0 = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
SCHEDULED_AT = T0 - timedelta(days=3)
STARTED_AT = T0 + timedelta(minutes=2)
DEAL_AT = STARTED_AT + timedelta(seconds=60)
CANCELLED_AT = STARTED_AT + timedelta(seconds=5)

ANA = Actor("ana", frozenset({"influencer"}))
BIA = Actor("bia", frozenset({"influencer"}))
GLOW_STAFF = Actor("gina", frozenset({"brand"}), frozenset({"glow"}))
LUMA_STAFF = Actor("lucas", frozenset({"brand"}), frozenset({"luma"}))
ALL_BRANDS_STAFF = Actor("alma", frozenset({"brand"}), frozenset({"glow", "luma"}))
ADMIN = Actor("root", frozenset({"admin"}))
VIEWER = Actor("vic", frozenset({"viewer"}))
OTHER_INFLUENCER = Actor("zoe", frozenset({"influencer"}))
OTHER_BRAND_STAFF = Actor("otto", frozenset({"brand"}), frozenset({"acme"}))
CLAIM_WITHOUT_ROLE = Actor("mallory", frozenset({"viewer"}), frozenset({"glow"}))

BRANDS = (
    LiveBrand(brand_id="glow", agreement_id="agr_glow"),
    LiveBrand(brand_id="luma", agreement_id="agr_luma"),
)
SHOWCASE = (
    ShowcaseItem(product_id="serum", brand_id="glow", sku_ids=["serum30", "serum50"]),
    ShowcaseItem(product_id="lipstick", brand_id="luma"),
)


def brl(amount: int) -> Money:
    return Money(amount=amount, currency="BRL")


def ms(n: int) -> timedelta:
    return timedelta(milliseconds=n)


# --- given ---------------------------------------------------------------------------------


def scheduled() -> LiveScheduled:
    return LiveScheduled(
        live_id=LIVE,
        title="Glow night",
        scheduled_start_at=T0,
        host_ids=["ana", "bia"],
        brands=list(BRANDS),
        showcase=list(SHOWCASE),
        scheduled_by="ana",
        occurred_at=SCHEDULED_AT,
    )


def started(at: datetime = STARTED_AT) -> LiveStarted:
    return LiveStarted(live_id=LIVE, started_by="ana", occurred_at=at)


def pinned(product_id: str = "serum", brand_id: str = "glow", sku_id: str | None = None) -> ProductPinned:
    return ProductPinned(
        live_id=LIVE,
        product_id=product_id,
        brand_id=brand_id,
        sku_id=sku_id,
        pinned_by="ana",
        live_offset_ms=1000,
        occurred_at=STARTED_AT + ms(1000),
    )


def deal_started(
    deal_id: str = "deal_1", sku_id: str = "serum30", at: datetime = STARTED_AT, duration_ms: int = 300_000
) -> FlashDealStarted:
    return FlashDealStarted(
        live_id=LIVE,
        deal_id=deal_id,
        brand_id="glow",
        product_id="serum",
        sku_id=sku_id,
        deal_price=brl(8990),
        units=40,
        per_buyer_cap=2,
        duration_ms=duration_ms,
        ends_at=at + ms(duration_ms),
        started_by="ana",
        live_offset_ms=(at - STARTED_AT) // ms(1),
        occurred_at=at,
    )


def deal_ended(deal_id: str = "deal_1", at: datetime = CANCELLED_AT) -> FlashDealEnded:
    return FlashDealEnded(
        live_id=LIVE,
        deal_id=deal_id,
        sku_id="serum30",
        reason="cancelled",
        ended_by="ana",
        live_offset_ms=(at - STARTED_AT) // ms(1),
        occurred_at=at,
    )


def ended(at: datetime) -> LiveEnded:
    return LiveEnded(live_id=LIVE, ended_by="ana", live_offset_ms=(at - STARTED_AT) // ms(1), occurred_at=at)


def on_air(*more: DomainEvent) -> list[DomainEvent]:
    return [scheduled(), started(), *more]


def when(history: Sequence[DomainEvent], command: LiveCommand) -> Sequence[DomainEvent]:
    return DECIDER.decide(command, fold(DECIDER, history))


def refused(history: Sequence[DomainEvent], command: LiveCommand) -> DomainError:
    with pytest.raises(DomainError) as caught:
        when(history, command)
    return caught.value


# --- when: commands ------------------------------------------------------------------------


def schedule(actor: Actor = ANA, **overrides: Any) -> ScheduleLive:
    fields: dict[str, Any] = {
        "live_id": LIVE,
        "title": "Glow night",
        "scheduled_start_at": T0,
        "host_ids": ("ana", "bia"),
        "brands": BRANDS,
        "showcase": SHOWCASE,
        "actor": actor,
        "at": SCHEDULED_AT,
    }
    return ScheduleLive(**(fields | overrides))


def start_deal(actor: Actor = ANA, at: datetime = DEAL_AT, **overrides: Any) -> StartFlashDeal:
    fields: dict[str, Any] = {
        "live_id": LIVE,
        "deal_id": "deal_2",
        "product_id": "serum",
        "sku_id": "serum30",
        "deal_price": brl(7990),
        "units": 30,
        "per_buyer_cap": 2,
        "duration_ms": 120_000,
        "actor": actor,
        "at": at,
    }
    return StartFlashDeal(**(fields | overrides))


def offer_terms(actor: Actor = ANA, **overrides: Any) -> OfferPaymentTerms:
    fields: dict[str, Any] = {
        "live_id": LIVE,
        "terms_id": "terms_1",
        "max_installments": 6,
        "interest_free": True,
        "actor": actor,
        "at": STARTED_AT + ms(90_000),
        "brand_id": "glow",
        "min_installment": brl(2000),
    }
    return OfferPaymentTerms(**(fields | overrides))


def sample(start_s: int, end_s: int, at_s: int | None = None, **overrides: Any) -> RecordAudienceSample:
    fields: dict[str, Any] = {
        "live_id": LIVE,
        "window_start": STARTED_AT + timedelta(seconds=start_s),
        "window_end": STARTED_AT + timedelta(seconds=end_s),
        "concurrent_viewers": 120,
        "peak_concurrent_viewers": 150,
        "joins": 30,
        "likes": 400,
        "at": STARTED_AT + timedelta(seconds=end_s if at_s is None else at_s),
    }
    return RecordAudienceSample(**(fields | overrides))


# --- scheduling ----------------------------------------------------------------------------


def test_a_host_schedules_a_live_with_its_brands_and_showcase() -> None:
    assert when([], schedule()) == [scheduled()]


@pytest.mark.parametrize("actor", [GLOW_STAFF, LUMA_STAFF, ADMIN], ids=["glow", "luma", "admin"])
def test_staff_of_one_of_its_brands_or_an_admin_may_schedule(actor: Actor) -> None:
    (event,) = when([], schedule(actor))
    assert isinstance(event, LiveScheduled)
    assert event.scheduled_by == actor.user_id


@pytest.mark.parametrize(
    "actor",
    [OTHER_INFLUENCER, OTHER_BRAND_STAFF, VIEWER, CLAIM_WITHOUT_ROLE, Actor("ana", frozenset({"viewer"}))],
    ids=["influencer-not-host", "other-brand", "viewer", "brand-claim-without-role", "host-without-role"],
)
def test_nobody_else_may_schedule(actor: Actor) -> None:
    error = refused([], schedule(actor))
    assert isinstance(error, Forbidden)
    assert error.code == "not_allowed_to_schedule"


def test_a_live_is_scheduled_once() -> None:
    error = refused([scheduled()], schedule())
    assert (error.status, error.code) == (409, "live_already_exists")


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"title": "   "}, "blank_title", "title"),
        ({"scheduled_start_at": SCHEDULED_AT}, "start_not_in_future", "scheduled_start_at"),
        ({"scheduled_start_at": SCHEDULED_AT - ms(1)}, "start_not_in_future", "scheduled_start_at"),
        ({"scheduled_start_at": SCHEDULED_AT + timedelta(days=366)}, "start_too_far", "scheduled_start_at"),
        ({"host_ids": ("ana", "bia", "ana")}, "duplicate_host", "host_ids"),
        ({"host_ids": (*(f"h{i}" for i in range(10)), "ana")}, "host_count", "host_ids"),
        ({"brands": (*BRANDS, BRANDS[0])}, "duplicate_brand", "brands"),
        ({"brands": (BRANDS[0],)}, "brand_not_on_live", "showcase[1].brand_id"),
        ({"showcase": (SHOWCASE[0], SHOWCASE[0])}, "duplicate_product", "showcase[1].product_id"),
        (
            {"showcase": (ShowcaseItem(product_id="p", brand_id="glow", sku_ids=["a", "a"]),)},
            "duplicate_sku",
            "showcase[0].sku_ids",
        ),
    ],
)
def test_scheduling_refuses_bad_input_naming_the_field(
    overrides: dict[str, Any], code: str, field: str
) -> None:
    error = refused([], schedule(**overrides))
    assert isinstance(error, Invalid)
    assert (error.code, error.field) == (code, field)


def test_the_schedule_refusal_checks_who_before_what() -> None:
    error = refused([], schedule(OTHER_INFLUENCER, title=" "))
    assert isinstance(error, Forbidden)


# --- reschedule, cancel, start, end --------------------------------------------------------


def test_a_scheduled_live_is_moved_to_a_new_start() -> None:
    new_start = T0 + timedelta(hours=1)
    command = RescheduleLive(LIVE, new_start, GLOW_STAFF, SCHEDULED_AT + timedelta(hours=1))
    assert when([scheduled()], command) == [
        LiveRescheduled(
            live_id=LIVE,
            scheduled_start_at=new_start,
            previous_scheduled_start_at=T0,
            rescheduled_by="gina",
            occurred_at=SCHEDULED_AT + timedelta(hours=1),
        )
    ]


def test_rescheduling_to_the_same_start_changes_nothing() -> None:
    assert when([scheduled()], RescheduleLive(LIVE, T0, ANA, SCHEDULED_AT)) == []


def test_rescheduling_into_the_past_is_refused() -> None:
    error = refused([scheduled()], RescheduleLive(LIVE, SCHEDULED_AT - ms(1), ANA, SCHEDULED_AT))
    assert (error.status, error.field) == (422, "scheduled_start_at")


def test_a_started_live_cannot_be_rescheduled_or_cancelled() -> None:
    at = STARTED_AT + ms(1)
    assert (
        refused(on_air(), RescheduleLive(LIVE, T0 + timedelta(days=1), ANA, at)).code == "live_not_scheduled"
    )
    assert refused(on_air(), CancelLive(LIVE, ANA, at)).code == "live_not_scheduled"


def test_a_scheduled_live_is_cancelled_with_a_reason() -> None:
    assert when([scheduled()], CancelLive(LIVE, BIA, SCHEDULED_AT, reason="host ill")) == [
        LiveCancelled(live_id=LIVE, cancelled_by="bia", reason="host ill", occurred_at=SCHEDULED_AT)
    ]


def test_a_cancelled_live_cannot_be_cancelled_again_nor_started() -> None:
    history = [scheduled(), LiveCancelled(live_id=LIVE, cancelled_by="ana", occurred_at=SCHEDULED_AT)]
    assert refused(history, CancelLive(LIVE, ANA, T0)).status == 409
    assert refused(history, StartLive(LIVE, ANA, T0)).code == "live_not_scheduled"


def test_a_host_starts_the_live_and_its_start_is_time_zero() -> None:
    assert when([scheduled()], StartLive(LIVE, ANA, STARTED_AT)) == [started()]


def test_a_live_may_start_before_its_planned_start() -> None:
    early = T0 - timedelta(minutes=10)
    assert when([scheduled()], StartLive(LIVE, ANA, early)) == [started(early)]


def test_a_live_starts_once() -> None:
    assert refused(on_air(), StartLive(LIVE, ANA, STARTED_AT)).code == "live_not_scheduled"


@pytest.mark.parametrize("actor", [ANA, BIA, GLOW_STAFF, LUMA_STAFF, ALL_BRANDS_STAFF, ADMIN])
def test_hosts_brand_staff_and_admins_operate_the_live(actor: Actor) -> None:
    (event,) = when([scheduled()], StartLive(LIVE, actor, STARTED_AT))
    assert isinstance(event, LiveStarted)
    assert event.started_by == actor.user_id


@pytest.mark.parametrize("actor", [OTHER_INFLUENCER, OTHER_BRAND_STAFF, VIEWER, CLAIM_WITHOUT_ROLE])
@pytest.mark.parametrize(
    "command",
    [
        StartLive(LIVE, VIEWER, STARTED_AT),
        RescheduleLive(LIVE, T0 + timedelta(hours=1), VIEWER, SCHEDULED_AT),
        CancelLive(LIVE, VIEWER, SCHEDULED_AT),
    ],
    ids=["start", "reschedule", "cancel"],
)
def test_others_may_not_operate_a_scheduled_live(actor: Actor, command: LiveCommand) -> None:
    error = refused([scheduled()], replace(command, actor=actor))
    assert isinstance(error, Forbidden)
    assert error.code == "not_live_operator"


@pytest.mark.parametrize("actor", [OTHER_INFLUENCER, OTHER_BRAND_STAFF, VIEWER])
@pytest.mark.parametrize(
    "command",
    [
        EndLive(LIVE, VIEWER, STARTED_AT + ms(10)),
        PinProduct(LIVE, "serum", VIEWER, STARTED_AT + ms(10)),
        UnpinProduct(LIVE, VIEWER, STARTED_AT + ms(10)),
        start_deal(VIEWER),
        CancelFlashDeal(LIVE, "deal_1", VIEWER, STARTED_AT + ms(10)),
        offer_terms(VIEWER),
    ],
    ids=["end", "pin", "unpin", "deal", "cancel-deal", "terms"],
)
def test_others_may_not_operate_a_live_on_air(actor: Actor, command: LiveCommand) -> None:
    history = on_air(pinned(), deal_started())
    error = refused(history, replace(command, actor=actor))
    assert isinstance(error, Forbidden)
    assert error.code == "not_live_operator"


@pytest.mark.parametrize(
    "command",
    [
        RescheduleLive("nope", T0, ANA, SCHEDULED_AT),
        StartLive("nope", ANA, T0),
        PinProduct("nope", "serum", ANA, T0),
        EndSoldOutFlashDeal("nope", "deal_1", T0),
        ExpireFlashDeals("nope", T0),
        sample(0, 60, live_id="nope"),
    ],
    ids=["reschedule", "start", "pin", "sold-out", "expire", "audience"],
)
def test_commands_on_an_unknown_live_are_not_found(command: LiveCommand) -> None:
    error = refused([], command)
    assert isinstance(error, NotFound)
    assert (error.code, error.field) == ("live_not_found", "live_id")


def test_ending_the_live_records_its_offset() -> None:
    at = STARTED_AT + timedelta(hours=1, milliseconds=5)
    assert when(on_air(), EndLive(LIVE, BIA, at)) == [
        LiveEnded(live_id=LIVE, ended_by="bia", live_offset_ms=3_600_005, occurred_at=at)
    ]


def test_ending_the_live_ends_running_deals_and_the_pin_first() -> None:
    at = STARTED_AT + ms(200_000)
    expired = deal_started("deal_old", sku_id="serum50", duration_ms=100_000)
    running = deal_started("deal_1", at=STARTED_AT + ms(150_000))
    finished = deal_started("deal_done", sku_id="serum30", duration_ms=1_000)
    history = on_air(finished, deal_ended("deal_done", STARTED_AT + ms(500)), expired, running, pinned())
    events = when(history, EndLive(LIVE, ANA, at))
    assert [(type(e).__name__, getattr(e, "deal_id", None), getattr(e, "reason", None)) for e in events] == [
        ("FlashDealEnded", "deal_old", "deadline"),
        ("FlashDealEnded", "deal_1", "live_ended"),
        ("ProductUnpinned", None, None),
        ("LiveEnded", None, None),
    ]
    deadline, live_ended = events[0], events[1]
    assert isinstance(deadline, FlashDealEnded)
    assert isinstance(live_ended, FlashDealEnded)
    assert (deadline.occurred_at, deadline.live_offset_ms) == (STARTED_AT + ms(100_000), 100_000)
    assert (live_ended.occurred_at, live_ended.live_offset_ms) == (at, 200_000)
    after = fold(DECIDER, [*history, *events])
    assert after.status == "ended"
    assert after.pin is None
    assert not any(deal.running() for deal in after.deals.values())


@pytest.mark.parametrize(
    "history",
    [[scheduled()], [*on_air(), ended(STARTED_AT + ms(10))]],
    ids=["scheduled", "ended"],
)
def test_only_a_live_on_air_can_be_ended_pinned_dealt_or_given_terms(history: list[DomainEvent]) -> None:
    at = STARTED_AT + ms(20)
    for command in (
        EndLive(LIVE, ANA, at),
        PinProduct(LIVE, "serum", ANA, at),
        UnpinProduct(LIVE, ANA, at),
        start_deal(at=at),
        offer_terms(at=at),
    ):
        assert refused(history, command).code == "live_not_on_air"


def test_the_offset_never_goes_negative_when_the_clock_steps_back() -> None:
    (event,) = when(on_air(), PinProduct(LIVE, "serum", ANA, STARTED_AT - ms(3)))
    assert isinstance(event, ProductPinned)
    assert event.live_offset_ms == 0


# --- pins ----------------------------------------------------------------------------------


def test_a_showcase_product_is_pinned_with_its_offset() -> None:
    at = STARTED_AT + ms(305_000)
    assert when(on_air(), PinProduct(LIVE, "serum", ANA, at, sku_id="serum50")) == [
        ProductPinned(
            live_id=LIVE,
            product_id="serum",
            brand_id="glow",
            sku_id="serum50",
            pinned_by="ana",
            live_offset_ms=305_000,
            occurred_at=at,
        )
    ]


def test_pinning_another_product_unpins_the_current_one() -> None:
    at = STARTED_AT + ms(2000)
    events = when(on_air(pinned()), PinProduct(LIVE, "lipstick", LUMA_STAFF, at))
    assert events == [
        ProductUnpinned(
            live_id=LIVE, product_id="serum", unpinned_by="lucas", live_offset_ms=2000, occurred_at=at
        ),
        ProductPinned(
            live_id=LIVE,
            product_id="lipstick",
            brand_id="luma",
            sku_id=None,
            pinned_by="lucas",
            live_offset_ms=2000,
            occurred_at=at,
        ),
    ]


def test_pinning_the_pinned_product_again_changes_nothing() -> None:
    assert when(on_air(pinned()), PinProduct(LIVE, "serum", ANA, STARTED_AT + ms(5))) == []


def test_highlighting_another_sku_of_the_pinned_product_repins_it_without_unpinning() -> None:
    events = when(on_air(pinned()), PinProduct(LIVE, "serum", ANA, STARTED_AT + ms(5), sku_id="serum30"))
    assert [type(e) for e in events] == [ProductPinned]


def test_a_product_with_no_sku_list_accepts_any_of_its_skus() -> None:
    (event,) = when(on_air(), PinProduct(LIVE, "lipstick", ANA, STARTED_AT, sku_id="lip_red"))
    assert isinstance(event, ProductPinned)
    assert event.sku_id == "lip_red"


@pytest.mark.parametrize(
    ("product_id", "sku_id", "code", "field"),
    [
        ("shampoo", None, "not_in_showcase", "product_id"),
        ("serum", "serum100", "sku_not_in_showcase", "sku_id"),
    ],
)
def test_only_showcase_products_and_skus_are_pinned(
    product_id: str, sku_id: str | None, code: str, field: str
) -> None:
    error = refused(on_air(), PinProduct(LIVE, product_id, ANA, STARTED_AT, sku_id=sku_id))
    assert isinstance(error, Invalid)
    assert (error.code, error.field) == (code, field)


def test_a_brands_staff_pins_only_its_own_products_but_hosts_pin_any() -> None:
    error = refused(on_air(), PinProduct(LIVE, "serum", LUMA_STAFF, STARTED_AT))
    assert isinstance(error, Forbidden)
    assert (error.code, error.field) == ("brand_not_yours", "product_id")
    assert when(on_air(), PinProduct(LIVE, "serum", BIA, STARTED_AT))


def test_the_pinned_product_is_unpinned() -> None:
    at = STARTED_AT + ms(9000)
    assert when(on_air(pinned()), UnpinProduct(LIVE, GLOW_STAFF, at, product_id="serum")) == [
        ProductUnpinned(
            live_id=LIVE, product_id="serum", unpinned_by="gina", live_offset_ms=9000, occurred_at=at
        )
    ]


def test_unpinning_needs_a_pin_and_the_right_product() -> None:
    assert refused(on_air(), UnpinProduct(LIVE, ANA, STARTED_AT)).code == "nothing_pinned"
    error = refused(on_air(pinned()), UnpinProduct(LIVE, ANA, STARTED_AT, product_id="lipstick"))
    assert (error.status, error.code, error.field) == (409, "not_pinned", "product_id")
    assert refused(on_air(pinned()), UnpinProduct(LIVE, LUMA_STAFF, STARTED_AT)).code == "brand_not_yours"


# --- flash deals ---------------------------------------------------------------------------


def test_a_flash_deal_starts_on_a_showcase_sku_and_ends_after_its_duration() -> None:
    at = STARTED_AT + ms(60_000)
    assert when(on_air(), start_deal(GLOW_STAFF, at)) == [
        FlashDealStarted(
            live_id=LIVE,
            deal_id="deal_2",
            brand_id="glow",
            product_id="serum",
            sku_id="serum30",
            deal_price=brl(7990),
            units=30,
            per_buyer_cap=2,
            duration_ms=120_000,
            ends_at=at + ms(120_000),
            started_by="gina",
            live_offset_ms=60_000,
            occurred_at=at,
        )
    ]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"product_id": "shampoo"}, "not_in_showcase", "product_id"),
        ({"sku_id": "serum100"}, "sku_not_in_showcase", "sku_id"),
        ({"deal_price": brl(0)}, "price_not_positive", "deal_price.amount"),
        ({"units": 0}, "units_not_positive", "units"),
        ({"per_buyer_cap": 0}, "per_buyer_cap_out_of_range", "per_buyer_cap"),
        ({"per_buyer_cap": 31}, "per_buyer_cap_out_of_range", "per_buyer_cap"),
        ({"duration_ms": 999}, "duration_out_of_range", "duration_ms"),
        ({"duration_ms": 24 * 3_600_000 + 1}, "duration_out_of_range", "duration_ms"),
    ],
)
def test_deal_terms_are_checked_naming_the_field(overrides: dict[str, Any], code: str, field: str) -> None:
    error = refused(on_air(), start_deal(**overrides))
    assert isinstance(error, Invalid)
    assert (error.code, error.field) == (code, field)


def test_the_per_buyer_cap_may_equal_the_units() -> None:
    assert when(on_air(), start_deal(units=3, per_buyer_cap=3))


def test_one_sku_has_at_most_one_running_deal() -> None:
    error = refused(on_air(deal_started()), start_deal(at=STARTED_AT + ms(299_999)))
    assert (error.status, error.code, error.field) == (409, "deal_already_active", "sku_id")


def test_other_skus_may_have_their_own_deal_at_the_same_time() -> None:
    events = when(on_air(deal_started()), start_deal(sku_id="serum50"))
    assert [type(e) for e in events] == [FlashDealStarted]


def test_a_new_deal_may_follow_a_cancelled_one_on_the_same_sku() -> None:
    events = when(on_air(deal_started(), deal_ended()), start_deal())
    assert [type(e) for e in events] == [FlashDealStarted]


def test_a_new_deal_after_the_deadline_records_the_old_deals_end_at_that_deadline_first() -> None:
    at = STARTED_AT + ms(300_000)
    events = when(on_air(deal_started()), start_deal(at=at))
    assert [type(e) for e in events] == [FlashDealEnded, FlashDealStarted]
    old = events[0]
    assert isinstance(old, FlashDealEnded)
    assert (old.deal_id, old.reason, old.occurred_at, old.live_offset_ms) == (
        "deal_1",
        "deadline",
        at,
        300_000,
    )


def test_a_deal_id_is_used_once() -> None:
    error = refused(on_air(deal_started(), deal_ended()), start_deal(deal_id="deal_1"))
    assert (error.code, error.field) == ("deal_already_exists", "deal_id")


def test_a_brands_staff_starts_deals_only_on_its_own_products() -> None:
    error = refused(on_air(), start_deal(LUMA_STAFF))
    assert (error.status, error.code, error.field) == (403, "brand_not_yours", "product_id")


def test_a_running_deal_is_cancelled_by_its_operator() -> None:
    at = STARTED_AT + ms(4000)
    assert when(on_air(deal_started()), CancelFlashDeal(LIVE, "deal_1", GLOW_STAFF, at)) == [
        FlashDealEnded(
            live_id=LIVE,
            deal_id="deal_1",
            sku_id="serum30",
            reason="cancelled",
            ended_by="gina",
            live_offset_ms=4000,
            occurred_at=at,
        )
    ]


def test_cancelling_a_deal_past_its_deadline_records_the_deadline() -> None:
    (event,) = when(on_air(deal_started()), CancelFlashDeal(LIVE, "deal_1", ANA, STARTED_AT + ms(400_000)))
    assert isinstance(event, FlashDealEnded)
    assert (event.reason, event.ended_by, event.occurred_at) == ("deadline", None, STARTED_AT + ms(300_000))


def test_cancelling_refuses_unknown_ended_or_foreign_deals() -> None:
    unknown = refused(on_air(), CancelFlashDeal(LIVE, "deal_9", ANA, STARTED_AT))
    assert (unknown.status, unknown.code, unknown.field) == (404, "deal_not_found", "deal_id")
    over = refused(on_air(deal_started(), deal_ended()), CancelFlashDeal(LIVE, "deal_1", ANA, STARTED_AT))
    assert (over.status, over.code) == (409, "deal_not_active")
    foreign = refused(on_air(deal_started()), CancelFlashDeal(LIVE, "deal_1", LUMA_STAFF, STARTED_AT))
    assert (foreign.status, foreign.code, foreign.field) == (403, "brand_not_yours", "deal_id")


def test_a_sold_out_deal_ends_when_the_catalog_reserves_its_last_unit() -> None:
    at = STARTED_AT + ms(61_000)
    assert when(on_air(deal_started()), EndSoldOutFlashDeal(LIVE, "deal_1", at)) == [
        FlashDealEnded(
            live_id=LIVE,
            deal_id="deal_1",
            sku_id="serum30",
            reason="sold_out",
            ended_by=None,
            live_offset_ms=61_000,
            occurred_at=at,
        )
    ]


def test_sold_out_is_idempotent_and_never_ends_a_deal_twice() -> None:
    history = on_air(deal_started())
    first = when(history, EndSoldOutFlashDeal(LIVE, "deal_1", STARTED_AT + ms(10)))
    assert when([*history, *first], EndSoldOutFlashDeal(LIVE, "deal_1", STARTED_AT + ms(20))) == []


def test_sold_out_after_the_live_ended_changes_nothing() -> None:
    history = on_air(deal_started())
    history += when(history, EndLive(LIVE, ANA, STARTED_AT + ms(10)))
    assert when(history, EndSoldOutFlashDeal(LIVE, "deal_1", STARTED_AT + ms(20))) == []


def test_sold_out_reported_after_the_deadline_records_the_deadline() -> None:
    (event,) = when(on_air(deal_started()), EndSoldOutFlashDeal(LIVE, "deal_1", STARTED_AT + ms(300_000)))
    assert isinstance(event, FlashDealEnded)
    assert event.reason == "deadline"


def test_sold_out_of_an_unknown_deal_is_not_found() -> None:
    assert refused(on_air(), EndSoldOutFlashDeal(LIVE, "deal_9", STARTED_AT)).code == "deal_not_found"


def test_the_clock_ends_exactly_the_deals_past_their_deadline() -> None:
    short = deal_started("deal_short", sku_id="serum50", duration_ms=10_000)
    history = on_air(deal_started(), short)
    assert when(history, ExpireFlashDeals(LIVE, STARTED_AT + ms(9_999))) == []
    events = when(history, ExpireFlashDeals(LIVE, STARTED_AT + ms(10_000)))
    assert [(e.deal_id, e.reason, e.occurred_at) for e in events if isinstance(e, FlashDealEnded)] == [
        ("deal_short", "deadline", STARTED_AT + ms(10_000))
    ]
    assert len(events) == 1
    assert when([*history, *events], ExpireFlashDeals(LIVE, STARTED_AT + ms(20_000))) == []


def test_the_clock_has_nothing_to_end_on_a_live_that_is_not_on_air() -> None:
    assert when([scheduled()], ExpireFlashDeals(LIVE, STARTED_AT)) == []


# --- payment terms -------------------------------------------------------------------------


def test_payment_terms_are_offered_during_the_live() -> None:
    at = STARTED_AT + ms(90_000)
    assert when(on_air(), offer_terms(GLOW_STAFF)) == [
        PaymentTermsOffered(
            live_id=LIVE,
            terms_id="terms_1",
            brand_id="glow",
            max_installments=6,
            interest_free=True,
            min_installment=brl(2000),
            valid_until=None,
            offered_by="gina",
            live_offset_ms=90_000,
            occurred_at=at,
        )
    ]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"brand_id": "acme"}, "brand_not_on_live", "brand_id"),
        ({"max_installments": 0}, "installments_out_of_range", "max_installments"),
        ({"max_installments": 49}, "installments_out_of_range", "max_installments"),
        ({"min_installment": brl(0)}, "min_installment_not_positive", "min_installment.amount"),
        ({"valid_until": STARTED_AT + ms(90_000)}, "valid_until_not_in_future", "valid_until"),
    ],
)
def test_payment_terms_are_checked_naming_the_field(overrides: dict[str, Any], code: str, field: str) -> None:
    error = refused(on_air(), offer_terms(**overrides))
    assert isinstance(error, Invalid)
    assert (error.code, error.field) == (code, field)


def test_terms_for_every_brand_need_a_host_an_admin_or_staff_of_every_brand() -> None:
    assert when(on_air(), offer_terms(ANA, brand_id=None))
    assert when(on_air(), offer_terms(ADMIN, brand_id=None))
    assert when(on_air(), offer_terms(ALL_BRANDS_STAFF, brand_id=None))
    error = refused(on_air(), offer_terms(GLOW_STAFF, brand_id=None))
    assert (error.status, error.code, error.field) == (403, "brand_not_yours", "brand_id")
    assert refused(on_air(), offer_terms(LUMA_STAFF, brand_id="glow")).code == "brand_not_yours"


def test_terms_ids_are_used_once() -> None:
    history = on_air(*when(on_air(), offer_terms()))
    assert refused(history, offer_terms()).code == "terms_already_exist"


# --- audience ------------------------------------------------------------------------------


def test_an_audience_window_is_recorded_with_the_offset_of_its_end() -> None:
    at = STARTED_AT + timedelta(seconds=60, milliseconds=150)
    assert when(on_air(), sample(0, 60, at=at)) == [
        AudienceSampled(
            live_id=LIVE,
            window_start=STARTED_AT,
            window_end=STARTED_AT + timedelta(seconds=60),
            concurrent_viewers=120,
            peak_concurrent_viewers=150,
            joins=30,
            likes=400,
            live_offset_ms=60_000,
            occurred_at=at,
        )
    ]


def recorded(*commands: RecordAudienceSample) -> list[DomainEvent]:
    history: list[DomainEvent] = on_air()
    for command in commands:
        history += when(history, command)
    return history


def test_a_window_sent_again_changes_nothing() -> None:
    assert when(recorded(sample(0, 60)), sample(0, 60, at_s=70)) == []


def test_windows_follow_each_other_without_overlap() -> None:
    assert when(recorded(sample(0, 60)), sample(60, 120))
    error = refused(recorded(sample(0, 60)), sample(59, 120))
    assert (error.status, error.code, error.field) == (409, "window_overlaps", "window_start")


@pytest.mark.parametrize(
    ("command", "code", "field"),
    [
        (sample(-1, 60), "window_before_live", "window_start"),
        (sample(60, 60), "empty_window", "window_end"),
        (sample(0, 60, at_s=59), "window_not_closed", "window_end"),
        (sample(0, 60, peak_concurrent_viewers=119), "peak_below_concurrent", "peak_concurrent_viewers"),
        (sample(0, 60, joins=-1), "negative_count", "joins"),
    ],
)
def test_audience_windows_are_checked_naming_the_field(
    command: RecordAudienceSample, code: str, field: str
) -> None:
    error = refused(on_air(), command)
    assert isinstance(error, Invalid)
    assert (error.code, error.field) == (code, field)


def test_no_audience_before_the_live_starts() -> None:
    assert refused([scheduled()], sample(0, 60)).code == "live_not_on_air"


def test_the_last_window_may_be_recorded_after_the_end_but_not_beyond_it() -> None:
    history = [*on_air(), ended(STARTED_AT + timedelta(seconds=90))]
    assert when(history, sample(60, 90, at_s=95))
    error = refused(history, sample(60, 120, at_s=125))
    assert (error.code, error.field) == ("window_after_live", "window_end")


# --- properties ----------------------------------------------------------------------------

_ACTORS = [ANA, GLOW_STAFF, LUMA_STAFF, VIEWER]
_SKUS = [("serum", "serum30"), ("serum", "serum50"), ("lipstick", "lip_red"), ("shampoo", "x")]


def _command(kind: int, pick: int, at: datetime, serial: int) -> LiveCommand:
    actor = _ACTORS[pick % len(_ACTORS)]
    product_id, sku_id = _SKUS[pick % len(_SKUS)]
    deal_id = f"deal_{pick % 5}"
    match kind:
        case 0:
            return StartLive(LIVE, actor, at)
        case 1:
            return EndLive(LIVE, actor, at)
        case 2:
            return PinProduct(LIVE, product_id, actor, at, sku_id=sku_id if pick % 2 else None)
        case 3:
            return UnpinProduct(LIVE, actor, at)
        case 4:
            return start_deal(
                actor,
                at,
                deal_id=deal_id,
                product_id=product_id,
                sku_id=sku_id,
                duration_ms=1000 * (1 + pick),
            )
        case 5:
            return CancelFlashDeal(LIVE, deal_id, actor, at)
        case 6:
            return EndSoldOutFlashDeal(LIVE, deal_id, at)
        case 7:
            return ExpireFlashDeals(LIVE, at)
        case _:
            return offer_terms(
                actor, at=at, terms_id=f"terms_{serial}", brand_id=None if pick % 3 else "luma"
            )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.integers(0, 19), st.integers(0, 20_000)),
        max_size=40,
    )
)
def test_any_sequence_of_commands_keeps_the_live_consistent(steps: list[tuple[int, int, int]]) -> None:
    """Whatever is tried in whatever order: one running deal per SKU, each deal ends once, at its
    deadline or before it, offsets are exact, and nothing stays running or pinned after the end."""
    history: list[DomainEvent] = [scheduled()]
    at = STARTED_AT
    for serial, (kind, pick, step_ms) in enumerate(steps):
        at += ms(step_ms)
        state = fold(DECIDER, history)
        try:
            events = DECIDER.decide(_command(kind, pick, at, serial), state)
        except DomainError:
            continue
        history += events
        _check_invariants(history, at)


def _check_invariants(history: Sequence[DomainEvent], now: datetime) -> None:
    state: LiveState = fold(DECIDER, history)
    running_not_due = [d.sku_id for d in state.deals.values() if d.running() and not d.due(now)]
    assert len(running_not_due) == len(set(running_not_due))
    ends = [e for e in history if isinstance(e, FlashDealEnded)]
    assert len({e.deal_id for e in ends}) == len(ends)
    starts = {e.deal_id: e for e in history if isinstance(e, FlashDealStarted)}
    for end in ends:
        deal = starts[end.deal_id]
        if end.reason == "deadline":
            assert end.occurred_at == deal.ends_at
        else:
            assert deal.occurred_at <= end.occurred_at < deal.ends_at
    started_at = state.started_at
    for event in history:
        offset = getattr(event, "live_offset_ms", None)
        if offset is not None:
            assert started_at is not None
            assert offset == max(0, (event.occurred_at - started_at) // ms(1))  # type: ignore[union-attr]
    if state.status == "ended":
        assert state.pin is None
        assert not any(deal.running() for deal in state.deals.values())
    if state.pin is not None:
        item = state.showcase_item(state.pin.product_id)
        assert item is not None
        assert item.brand_id == state.pin.brand_id
