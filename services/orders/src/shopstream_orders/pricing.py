"""The price and attribution of an order, decided by orders alone from its own projections.

Pure, like the decider: the handler reads the snapshots below from the projections of the
catalog and live events in its inbox, calls ``quote`` with the clock's time and passes the
result inside ``PlaceOrder``. Rules:

- Channel: no live ⇒ ``web``; a live on air ⇒ ``live`` (with ``live_offset_ms``, the time
  since LiveStarted); a live that has ended ⇒ ``replay``. A live not started yet or cancelled
  sells nothing. The SKU's brand must sell on that live; the order is attributed to the live,
  its hosts (lead host first) and the brand's agreement on that live.
- Unit price: the price of the SKU's flash deal on that live while it is active (started, not
  ended, before its ``ends_at``; channel ``live`` only, and only in the currency of the buyer's
  market), else the list price of the buyer's market. No contract event carries any other
  live-only price, so ``price_source`` is ``flash_deal`` or ``list``.
- Payment plan: with the live's payment terms, at most their installments, interest-free as
  they say, and no installment below their minimum (the smallest installment of a total split
  in n is ``⌊total/n⌋``). Without terms, any number of installments with interest (one
  installment is payment at once: no interest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shopstream_contracts import Money
from shopstream_contracts.base import JSON_SAFE_INT
from shopstream_contracts.orders.v1 import Attribution, OrderLine, PaymentPlan
from shopstream_service.domain import DomainError, Invalid, NotFound

from .commands import OrderRequest, Quote

LiveStatus = Literal["scheduled", "on_air", "ended", "cancelled"]

_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class SkuSnapshot:
    sku_id: str
    product_id: str
    brand_id: str
    list_price: Money | None
    """The list price in the requested market; None when the SKU is not sold there."""


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    live_id: str
    status: LiveStatus
    started_at: datetime | None
    host_ids: tuple[str, ...]
    agreements: Mapping[str, str]
    """brand id ⇒ the agreement that brand sells under on this live."""


@dataclass(frozen=True, slots=True)
class DealSnapshot:
    deal_id: str
    price: Money
    started_at: datetime
    ends_at: datetime
    ended: bool

    def active_at(self, at: datetime) -> bool:
        return not self.ended and self.started_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class TermsSnapshot:
    terms_id: str
    live_id: str
    brand_id: str | None
    max_installments: int
    interest_free: bool
    min_installment: Money | None
    valid_until: datetime | None


def quote(
    request: OrderRequest,
    *,
    sku: SkuSnapshot | None,
    live: LiveSnapshot | None,
    deals: Sequence[DealSnapshot],
    terms: TermsSnapshot | None,
    at: datetime,
) -> Quote:
    """The price snapshot and attribution of ``request`` at ``at``.

    ``live`` and ``terms`` are the ones the request names (None when it names none or the
    projection does not know them); ``deals`` are the flash deals of the SKU on that live.
    """
    if sku is None:
        raise NotFound("sku_not_found", f"no SKU {request.sku_id!r} is known", field="sku_id")
    if sku.list_price is None:
        raise Invalid(
            "not_sold_in_market",
            f"SKU {sku.sku_id!r} has no list price in market {request.market}",
            field="market",
        )
    list_price = sku.list_price
    attribution, deal = _attribution(request, sku, live, deals, list_price, at)
    unit_price = list_price if deal is None else deal.price
    line_amount = unit_price.amount * request.quantity
    if line_amount > JSON_SAFE_INT:
        raise Invalid("amount_too_large", "the order total is too large; order fewer units", field="quantity")
    line_total = Money(amount=line_amount, currency=unit_price.currency)
    line = OrderLine(
        product_id=sku.product_id,
        sku_id=sku.sku_id,
        brand_id=sku.brand_id,
        quantity=request.quantity,
        unit_price=unit_price,
        list_price=list_price,
        line_total=line_total,
    )
    plan = _payment_plan(request, sku, live, terms, line_total, at)
    return Quote(
        market=request.market, line=line, attribution=attribution, payment_plan=plan, total=line_total
    )


def _attribution(
    request: OrderRequest,
    sku: SkuSnapshot,
    live: LiveSnapshot | None,
    deals: Sequence[DealSnapshot],
    list_price: Money,
    at: datetime,
) -> tuple[Attribution, DealSnapshot | None]:
    """The attribution of the sale and the flash deal whose price applies, if any."""
    if request.live_id is None:
        return Attribution(channel="web", brand_id=sku.brand_id, price_source="list"), None
    if live is None:
        raise NotFound("live_not_found", f"no live {request.live_id!r} is known", field="live_id")
    if live.status == "scheduled":
        raise DomainError(
            "live_not_started", "the live has not started yet; it sells nothing before", field="live_id"
        )
    if live.status == "cancelled":
        raise DomainError("live_cancelled", "the live was cancelled; it sells nothing", field="live_id")
    agreement_id = live.agreements.get(sku.brand_id)
    if agreement_id is None:
        raise Invalid(
            "brand_not_on_live",
            f"brand {sku.brand_id!r} of this SKU does not sell on this live",
            field="live_id",
        )
    if live.status == "ended":
        channel: Literal["live", "replay"] = "replay"
        offset_ms = None
        deal = None
    else:
        if live.started_at is None:
            raise ValueError(f"live {live.live_id} is on air without a start time")
        channel = "live"
        offset_ms = max(0, (at - live.started_at) // _MILLISECOND)
        deal = _active_deal(deals, list_price.currency, at)
    attribution = Attribution(
        channel=channel,
        live_id=live.live_id,
        brand_id=sku.brand_id,
        agreement_id=agreement_id,
        host_ids=list(live.host_ids),
        price_source="list" if deal is None else "flash_deal",
        flash_deal_id=None if deal is None else deal.deal_id,
        live_offset_ms=offset_ms,
    )
    return attribution, deal


def _active_deal(deals: Sequence[DealSnapshot], currency: str, at: datetime) -> DealSnapshot | None:
    active = [d for d in deals if d.active_at(at) and d.price.currency == currency]
    # Two overlapping deals on one SKU: the latest one is the one on screen.
    return max(active, key=lambda d: (d.started_at, d.deal_id), default=None)


def _payment_plan(
    request: OrderRequest,
    sku: SkuSnapshot,
    live: LiveSnapshot | None,
    terms: TermsSnapshot | None,
    total: Money,
    at: datetime,
) -> PaymentPlan:
    installments = request.installments
    if request.terms_id is None:
        return PaymentPlan(
            method=request.payment_method, installments=installments, interest_free=installments == 1
        )
    field = "payment_plan.terms_id"
    if terms is None or live is None or terms.live_id != live.live_id:
        raise NotFound("terms_not_found", "these payment terms were not offered on this live", field=field)
    if terms.brand_id is not None and terms.brand_id != sku.brand_id:
        raise Invalid(
            "terms_not_for_brand", "these payment terms are for another brand's products", field=field
        )
    lapsed = at >= terms.valid_until if terms.valid_until is not None else live.status != "on_air"
    if lapsed:
        raise DomainError("terms_expired", "these payment terms are no longer offered", field=field)
    if installments > terms.max_installments:
        raise Invalid(
            "too_many_installments",
            f"these payment terms allow at most {terms.max_installments} installments",
            field="payment_plan.installments",
        )
    minimum = terms.min_installment
    if minimum is not None and installments > 1:
        if minimum.currency != total.currency:
            raise Invalid(
                "terms_currency_mismatch", "these payment terms are in another currency", field=field
            )
        if total.amount // installments < minimum.amount:
            raise Invalid(
                "installment_below_minimum",
                f"each installment must be at least {minimum.amount} {minimum.currency} minor units",
                field="payment_plan.installments",
            )
    return PaymentPlan(
        method=request.payment_method,
        installments=installments,
        interest_free=terms.interest_free,
        terms_id=terms.terms_id,
    )
