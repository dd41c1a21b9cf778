"""Price and attribution of an order from the projections' snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from shopstream_contracts import Money
from shopstream_orders.commands import OrderRequest, Quote
from shopstream_orders.pricing import DealSnapshot, LiveSnapshot, SkuSnapshot, TermsSnapshot, quote
from shopstream_service.domain import DomainError, Invalid, NotFound

pytestmark = pytest.mark.unit

STARTED = datetime(2025, 5, 1, 20, 0, tzinfo=UTC)
AT = STARTED + timedelta(minutes=25, seconds=12, microseconds=340_999)
SKU = SkuSnapshot("sku_serum", "prd_serum", "brd_glow", Money(amount=12990, currency="BRL"))
LIVE = LiveSnapshot(
    "liv_1", "on_air", STARTED, ("usr_ana", "usr_bia"), {"brd_glow": "agr_glow", "brd_other": "agr_other"}
)
DEAL = DealSnapshot(
    "deal_1", Money(amount=8990, currency="BRL"), AT - timedelta(minutes=1), AT + timedelta(minutes=4), False
)
TERMS = TermsSnapshot(
    "terms_1", "liv_1", "brd_glow", 6, True, Money(amount=1000, currency="BRL"), valid_until=None
)
ON_LIVE = OrderRequest("sku_serum", 2, "BR", "liv_1", "card")
ON_WEB = OrderRequest("sku_serum", 2, "BR", None, "pix")


def priced(
    request: OrderRequest = ON_LIVE,
    *,
    sku: SkuSnapshot | None = SKU,
    live: LiveSnapshot | None = LIVE,
    deals: Sequence[DealSnapshot] = (DEAL,),
    terms: TermsSnapshot | None = None,
    at: datetime = AT,
) -> Quote:
    return quote(request, sku=sku, live=live, deals=deals, terms=terms, at=at)


def refused(code: str, kind: type[DomainError] = DomainError, **kwargs: object) -> DomainError:
    with pytest.raises(kind) as refusal:
        priced(**kwargs)  # type: ignore[arg-type]
    assert refusal.value.code == code
    return refusal.value


def with_terms(installments: int, terms: TermsSnapshot = TERMS) -> OrderRequest:
    return replace(ON_LIVE, installments=installments, terms_id=terms.terms_id)


def test_an_active_flash_deal_sets_the_price_and_the_whole_attribution() -> None:
    result = priced()
    line, attribution = result.line, result.attribution
    assert (line.unit_price.amount, line.list_price.amount, line.line_total.amount) == (8990, 12990, 17980)
    assert result.total == line.line_total
    assert (line.product_id, line.brand_id, line.quantity) == ("prd_serum", "brd_glow", 2)
    assert attribution.channel == "live"
    assert (attribution.live_id, attribution.brand_id, attribution.agreement_id) == (
        "liv_1",
        "brd_glow",
        "agr_glow",
    )
    assert attribution.host_ids == ["usr_ana", "usr_bia"]
    assert (attribution.price_source, attribution.flash_deal_id) == ("flash_deal", "deal_1")
    assert attribution.live_offset_ms == (25 * 60 + 12) * 1000 + 340


def test_without_a_deal_a_live_order_pays_the_list_price() -> None:
    attribution = priced(deals=()).attribution
    assert (attribution.channel, attribution.price_source, attribution.flash_deal_id) == (
        "live",
        "list",
        None,
    )
    assert priced(deals=()).line.unit_price.amount == 12990


@pytest.mark.parametrize(
    "deal",
    [
        replace(DEAL, ended=True),
        replace(DEAL, ends_at=AT),
        replace(DEAL, started_at=AT + timedelta(seconds=1)),
        replace(DEAL, price=Money(amount=8990, currency="USD")),
    ],
    ids=["ended", "deadline_reached", "not_started", "other_currency"],
)
def test_a_deal_that_is_not_active_here_and_now_does_not_apply(deal: DealSnapshot) -> None:
    result = priced(deals=[deal])
    assert (result.attribution.price_source, result.line.unit_price.amount) == ("list", 12990)


def test_of_overlapping_deals_the_latest_started_applies() -> None:
    later = replace(DEAL, deal_id="deal_2", price=Money(amount=7990, currency="BRL"), started_at=AT)
    result = priced(deals=[later, DEAL])
    assert (result.attribution.flash_deal_id, result.line.unit_price.amount) == ("deal_2", 7990)


def test_a_web_order_pays_the_list_price_and_credits_no_live() -> None:
    attribution = priced(ON_WEB, live=None).attribution
    assert attribution.channel == "web"
    assert (attribution.live_id, attribution.agreement_id, attribution.host_ids) == (None, None, [])
    assert (attribution.price_source, attribution.live_offset_ms) == ("list", None)


def test_an_order_after_the_live_is_a_replay_at_the_list_price() -> None:
    attribution = priced(live=replace(LIVE, status="ended")).attribution
    assert (attribution.channel, attribution.price_source, attribution.live_offset_ms) == (
        "replay",
        "list",
        None,
    )
    assert (attribution.live_id, attribution.agreement_id) == ("liv_1", "agr_glow")


def test_the_offset_is_never_negative() -> None:
    assert priced(at=STARTED - timedelta(seconds=1), deals=()).attribution.live_offset_ms == 0


def test_unknown_sku_live_and_markets_are_refused() -> None:
    assert refused("sku_not_found", NotFound, sku=None).field == "sku_id"
    assert refused("live_not_found", NotFound, live=None).field == "live_id"
    assert refused("not_sold_in_market", Invalid, sku=replace(SKU, list_price=None)).field == "market"


def test_a_live_sells_only_while_started_and_only_its_brands() -> None:
    assert (
        refused("live_not_started", live=replace(LIVE, status="scheduled", started_at=None)).field
        == "live_id"
    )
    assert refused("live_cancelled", live=replace(LIVE, status="cancelled")).field == "live_id"
    assert (
        refused("brand_not_on_live", Invalid, live=replace(LIVE, agreements={"brd_other": "a"})).field
        == "live_id"
    )


def test_too_large_a_total_is_refused() -> None:
    refused("amount_too_large", Invalid, request=replace(ON_LIVE, quantity=2**52))


# -- payment plans -----------------------------------------------------------------------------


def test_without_terms_one_installment_is_interest_free_and_more_bear_interest() -> None:
    once = priced().payment_plan
    assert (once.method, once.installments, once.interest_free, once.terms_id) == ("card", 1, True, None)
    assert not priced(replace(ON_LIVE, installments=3)).payment_plan.interest_free


def test_the_lives_terms_make_installments_interest_free() -> None:
    plan = priced(with_terms(6), deals=(), terms=TERMS).payment_plan
    assert (plan.installments, plan.interest_free, plan.terms_id) == (6, True, "terms_1")


def test_terms_offered_for_every_brand_apply_to_this_one() -> None:
    assert priced(with_terms(2), terms=replace(TERMS, brand_id=None)).payment_plan.terms_id == "terms_1"


def test_terms_limits_are_enforced() -> None:
    field = "payment_plan.installments"
    assert refused("too_many_installments", Invalid, request=with_terms(7), terms=TERMS).field == field
    # 17980 in 3 is 5993 per installment: below a 6000 minimum.
    minimum = replace(TERMS, min_installment=Money(amount=6000, currency="BRL"))
    assert refused("installment_below_minimum", Invalid, request=with_terms(3), terms=minimum).field == field
    assert priced(with_terms(2), terms=minimum).payment_plan.installments == 2


def test_terms_must_belong_to_the_live_the_brand_and_the_currency() -> None:
    field = "payment_plan.terms_id"
    assert refused("terms_not_found", NotFound, request=with_terms(2), terms=None).field == field
    elsewhere = replace(TERMS, live_id="liv_2")
    assert refused("terms_not_found", NotFound, request=with_terms(2), terms=elsewhere).field == field
    web = replace(ON_WEB, terms_id="terms_1")
    assert refused("terms_not_found", NotFound, request=web, live=None, terms=TERMS).field == field
    other_brand = replace(TERMS, brand_id="brd_other")
    assert refused("terms_not_for_brand", Invalid, request=with_terms(2), terms=other_brand).field == field
    usd = replace(TERMS, min_installment=Money(amount=10, currency="USD"))
    assert refused("terms_currency_mismatch", Invalid, request=with_terms(2), terms=usd).field == field


def test_terms_lapse_at_their_deadline_or_with_the_live() -> None:
    until = replace(TERMS, valid_until=AT)
    refused("terms_expired", request=with_terms(2), terms=until)
    assert priced(with_terms(2), terms=until, at=AT - timedelta(microseconds=1)).payment_plan.terms_id
    refused("terms_expired", request=with_terms(2), terms=TERMS, live=replace(LIVE, status="ended"))


# -- invariants --------------------------------------------------------------------------------


@for_all(
    quantity=st.integers(1, 1000),
    list_price=st.integers(0, 10**7),
    deal_price=st.integers(0, 10**7),
    deal_currency=st.sampled_from(["BRL", "USD"]),
    deal_start=st.integers(-600, 600),
    deal_length=st.integers(1, 600),
    ended=st.booleans(),
    status=st.sampled_from(["on_air", "ended"]),
)
def test_the_unit_price_is_the_active_deals_or_the_list_price(
    quantity: int,
    list_price: int,
    deal_price: int,
    deal_currency: str,
    deal_start: int,
    deal_length: int,
    ended: bool,
    status: str,
) -> None:
    starts = AT + timedelta(seconds=deal_start)
    deal = DealSnapshot(
        "deal_x",
        Money(amount=deal_price, currency=deal_currency),
        starts,
        starts + timedelta(seconds=deal_length),
        ended,
    )
    live = replace(LIVE, status=status)  # type: ignore[arg-type]
    sku = replace(SKU, list_price=Money(amount=list_price, currency="BRL"))
    result = priced(replace(ON_LIVE, quantity=quantity), sku=sku, live=live, deals=[deal])
    applies = status == "on_air" and not ended and starts <= AT < deal.ends_at and deal_currency == "BRL"
    expected_unit = deal_price if applies else list_price
    assert result.attribution.price_source == ("flash_deal" if applies else "list")
    assert result.line.unit_price == Money(amount=expected_unit, currency="BRL")
    assert result.line.line_total.amount == expected_unit * quantity == result.total.amount
    assert result.line.list_price.amount == list_price
