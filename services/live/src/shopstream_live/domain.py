"""The live session aggregate: one event stream per live (``live-<live_id>``).

Lifecycle: scheduled ⇒ (rescheduled)* ⇒ live ⇒ ended, or scheduled ⇒ cancelled. While the live
is on air its operators (hosts, staff of its brands, admins) pin showcase products, run flash
deals and offer payment terms; the audience is tallied per window.

Timing rules worth knowing:
- Every in-live event carries ``live_offset_ms`` = its ``occurred_at`` − the live's start.
- A flash deal whose deadline has passed is over, whether or not the clock-driven
  ``ExpireFlashDeals`` has run yet: it is recorded as ended with reason ``deadline`` *at its
  deadline* (``occurred_at = ends_at``), so its recorded lifetime is exactly ``duration_ms``.
  Any later command that meets such a deal (a new deal on its SKU, a cancel, the sold-out
  policy, the end of the live) records that ending first.
- Deciding is idempotent where a command can legitimately be repeated (the sold-out policy, the
  deadline ticker, a re-sent audience window): a repeat changes nothing instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, assert_never

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
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound

from .commands import (
    INFLUENCER,
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

Status = Literal["none", "scheduled", "live", "ended", "cancelled"]
DealEndReason = Literal["deadline", "sold_out", "cancelled", "live_ended"]

MAX_HOSTS = 10
MAX_BRANDS = 20
MAX_SHOWCASE = 200
MAX_SCHEDULE_AHEAD = timedelta(days=365)
MIN_DEAL_DURATION_MS = 1_000
MAX_DEAL_DURATION_MS = 24 * 60 * 60 * 1_000
MAX_INSTALLMENTS = 48
_MS = timedelta(milliseconds=1)


def stream_id(live_id: str) -> str:
    return f"live-{live_id}"


@dataclass(frozen=True, slots=True)
class Pin:
    product_id: str
    brand_id: str
    sku_id: str | None


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: str
    brand_id: str
    sku_id: str
    ends_at: datetime
    ended: bool = False

    def running(self) -> bool:
        return not self.ended

    def due(self, at: datetime) -> bool:
        """Still recorded as running although its deadline has passed."""
        return not self.ended and self.ends_at <= at


@dataclass(frozen=True, slots=True)
class LiveState:
    status: Status = "none"
    live_id: str = ""
    scheduled_start_at: datetime | None = None
    host_ids: tuple[str, ...] = ()
    brands: tuple[LiveBrand, ...] = ()
    showcase: tuple[ShowcaseItem, ...] = ()
    started_at: datetime | None = None
    ended_at: datetime | None = None
    pin: Pin | None = None
    deals: Mapping[str, Deal] = field(default_factory=dict)
    terms_ids: frozenset[str] = frozenset()
    last_window: tuple[datetime, datetime] | None = None

    @property
    def brand_ids(self) -> tuple[str, ...]:
        return tuple(brand.brand_id for brand in self.brands)

    def showcase_item(self, product_id: str) -> ShowcaseItem | None:
        return next((item for item in self.showcase if item.product_id == product_id), None)


class LiveDecider:
    def initial_state(self) -> LiveState:
        return LiveState()

    def evolve(self, state: LiveState, event: DomainEvent) -> LiveState:
        match event:
            case LiveScheduled():
                return LiveState(
                    status="scheduled",
                    live_id=event.live_id,
                    scheduled_start_at=event.scheduled_start_at,
                    host_ids=tuple(event.host_ids),
                    brands=tuple(event.brands),
                    showcase=tuple(event.showcase),
                )
            case LiveRescheduled():
                return replace(state, scheduled_start_at=event.scheduled_start_at)
            case LiveCancelled():
                return replace(state, status="cancelled")
            case LiveStarted():
                return replace(state, status="live", started_at=event.occurred_at)
            case LiveEnded():
                return replace(state, status="ended", ended_at=event.occurred_at, pin=None)
            case ProductPinned():
                return replace(state, pin=Pin(event.product_id, event.brand_id, event.sku_id))
            case ProductUnpinned():
                return replace(state, pin=None)
            case FlashDealStarted():
                deal = Deal(event.deal_id, event.brand_id, event.sku_id, event.ends_at)
                return replace(state, deals={**state.deals, deal.deal_id: deal})
            case FlashDealEnded():
                ended = replace(state.deals[event.deal_id], ended=True)
                return replace(state, deals={**state.deals, ended.deal_id: ended})
            case PaymentTermsOffered():
                return replace(state, terms_ids=state.terms_ids | {event.terms_id})
            case AudienceSampled():
                return replace(state, last_window=(event.window_start, event.window_end))
        return state

    def decide(self, command: LiveCommand, state: LiveState) -> Sequence[DomainEvent]:
        if isinstance(command, ScheduleLive):
            return _schedule(command, state)
        if state.status == "none":
            raise NotFound("live_not_found", f"no live {command.live_id!r}", field="live_id")
        match command:
            case RescheduleLive():
                return _reschedule(command, state)
            case CancelLive():
                return _cancel(command, state)
            case StartLive():
                return _start(command, state)
            case EndLive():
                return _end(command, state)
            case PinProduct():
                return _pin(command, state)
            case UnpinProduct():
                return _unpin(command, state)
            case StartFlashDeal():
                return _start_deal(command, state)
            case CancelFlashDeal():
                return _cancel_deal(command, state)
            case EndSoldOutFlashDeal():
                return _end_sold_out(command, state)
            case ExpireFlashDeals():
                return [_deal_ended(state, deal, "deadline") for deal in _due_deals(state, command.at)]
            case OfferPaymentTerms():
                return _offer_terms(command, state)
            case RecordAudienceSample():
                return _record_audience(command, state)
            case _:
                assert_never(command)


# --- authorization -------------------------------------------------------------------------


def _require_operator(state: LiveState, actor: Actor, action: str) -> None:
    if actor.is_admin or actor.user_id in state.host_ids:
        return
    if any(actor.staff_of(brand_id) for brand_id in state.brand_ids):
        return
    raise Forbidden(
        "not_live_operator",
        f"only the live's hosts, staff of its brands or admins may {action}",
    )


def _require_brand_scope(state: LiveState, actor: Actor, brand_id: str, field: str) -> None:
    """On a live shared by several brands, a brand's staff acts only on its own products."""
    if actor.is_admin or actor.user_id in state.host_ids or actor.staff_of(brand_id):
        return
    raise Forbidden("brand_not_yours", f"brand {brand_id!r} is not one of your brands", field=field)


# --- lifecycle -----------------------------------------------------------------------------


def _schedule(command: ScheduleLive, state: LiveState) -> Sequence[DomainEvent]:
    if state.status != "none":
        raise DomainError("live_already_exists", f"live {command.live_id!r} already exists", field="live_id")
    actor = command.actor
    may_schedule = (
        actor.is_admin
        or (INFLUENCER in actor.roles and actor.user_id in command.host_ids)
        or any(actor.staff_of(brand.brand_id) for brand in command.brands)
    )
    if not may_schedule:
        raise Forbidden(
            "not_allowed_to_schedule",
            "a live is scheduled by one of its hosts (an influencer), staff of one of its brands or an admin",
        )
    if not command.title.strip():
        raise Invalid("blank_title", "the title must not be blank", field="title")
    _check_start_time(command.scheduled_start_at, command.at)
    _check_hosts(command.host_ids)
    _check_brands(command.brands)
    _check_showcase(command.showcase, {brand.brand_id for brand in command.brands})
    return [
        LiveScheduled(
            live_id=command.live_id,
            title=command.title,
            description=command.description,
            scheduled_start_at=command.scheduled_start_at,
            host_ids=list(command.host_ids),
            brands=list(command.brands),
            showcase=list(command.showcase),
            scheduled_by=actor.user_id,
            occurred_at=command.at,
        )
    ]


def _check_start_time(start: datetime, at: datetime) -> None:
    if start <= at:
        raise Invalid(
            "start_not_in_future", "the scheduled start must be in the future", field="scheduled_start_at"
        )
    if start - at > MAX_SCHEDULE_AHEAD:
        raise Invalid(
            "start_too_far",
            f"a live is scheduled at most {MAX_SCHEDULE_AHEAD.days} days ahead",
            field="scheduled_start_at",
        )


def _check_hosts(host_ids: Sequence[str]) -> None:
    if not 1 <= len(host_ids) <= MAX_HOSTS:
        raise Invalid("host_count", f"a live has 1 to {MAX_HOSTS} hosts", field="host_ids")
    if len(set(host_ids)) != len(host_ids):
        raise Invalid("duplicate_host", "each host is listed once", field="host_ids")


def _check_brands(brands: Sequence[LiveBrand]) -> None:
    if not 1 <= len(brands) <= MAX_BRANDS:
        raise Invalid("brand_count", f"a live has 1 to {MAX_BRANDS} brands", field="brands")
    if len({brand.brand_id for brand in brands}) != len(brands):
        raise Invalid("duplicate_brand", "each brand is listed once", field="brands")


def _check_showcase(showcase: Sequence[ShowcaseItem], brand_ids: set[str]) -> None:
    if len(showcase) > MAX_SHOWCASE:
        raise Invalid(
            "showcase_too_large", f"a showcase has at most {MAX_SHOWCASE} products", field="showcase"
        )
    seen: set[str] = set()
    for index, item in enumerate(showcase):
        if item.product_id in seen:
            raise Invalid(
                "duplicate_product", "each product is listed once", field=f"showcase[{index}].product_id"
            )
        seen.add(item.product_id)
        if item.brand_id not in brand_ids:
            raise Invalid(
                "brand_not_on_live",
                f"brand {item.brand_id!r} is not one of the live's brands",
                field=f"showcase[{index}].brand_id",
            )
        if len(set(item.sku_ids)) != len(item.sku_ids):
            raise Invalid("duplicate_sku", "each SKU is listed once", field=f"showcase[{index}].sku_ids")


def _require_scheduled(state: LiveState, action: str) -> None:
    if state.status != "scheduled":
        raise DomainError("live_not_scheduled", f"cannot {action} a live that is {state.status}")


def _reschedule(command: RescheduleLive, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "reschedule it")
    _require_scheduled(state, "reschedule")
    assert state.scheduled_start_at is not None
    if command.scheduled_start_at == state.scheduled_start_at:
        return []
    _check_start_time(command.scheduled_start_at, command.at)
    return [
        LiveRescheduled(
            live_id=state.live_id,
            scheduled_start_at=command.scheduled_start_at,
            previous_scheduled_start_at=state.scheduled_start_at,
            rescheduled_by=command.actor.user_id,
            occurred_at=command.at,
        )
    ]


def _cancel(command: CancelLive, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "cancel it")
    _require_scheduled(state, "cancel")
    return [
        LiveCancelled(
            live_id=state.live_id,
            cancelled_by=command.actor.user_id,
            reason=command.reason,
            occurred_at=command.at,
        )
    ]


def _start(command: StartLive, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "start it")
    _require_scheduled(state, "start")
    return [LiveStarted(live_id=state.live_id, started_by=command.actor.user_id, occurred_at=command.at)]


def _end(command: EndLive, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "end it")
    _require_on_air(state, "end")
    at, actor = command.at, command.actor.user_id
    events: list[DomainEvent] = [
        _deal_ended(state, deal, "deadline" if deal.due(at) else "live_ended", at=at)
        for deal in state.deals.values()
        if deal.running()
    ]
    if state.pin is not None:
        events.append(_unpinned(state, state.pin, actor, at))
    events.append(
        LiveEnded(live_id=state.live_id, ended_by=actor, live_offset_ms=_offset(state, at), occurred_at=at)
    )
    return events


def _require_on_air(state: LiveState, action: str) -> None:
    if state.status != "live":
        raise DomainError("live_not_on_air", f"cannot {action}: the live is {state.status}, not on air")


def _offset(state: LiveState, at: datetime) -> int:
    assert state.started_at is not None
    # A wall clock may step back a little (NTP); the contract's offset is never negative.
    return max(0, (at - state.started_at) // _MS)


# --- pins ----------------------------------------------------------------------------------


def _pin(command: PinProduct, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "pin products")
    _require_on_air(state, "pin a product")
    item = _showcase_item(state, command.product_id)
    _require_brand_scope(state, command.actor, item.brand_id, "product_id")
    if command.sku_id is not None:
        _check_sku(item, command.sku_id)
    pin = Pin(item.product_id, item.brand_id, command.sku_id)
    if state.pin == pin:
        return []
    events: list[DomainEvent] = []
    if state.pin is not None and state.pin.product_id != pin.product_id:
        events.append(_unpinned(state, state.pin, command.actor.user_id, command.at))
    events.append(
        ProductPinned(
            live_id=state.live_id,
            product_id=pin.product_id,
            brand_id=pin.brand_id,
            sku_id=pin.sku_id,
            pinned_by=command.actor.user_id,
            live_offset_ms=_offset(state, command.at),
            occurred_at=command.at,
        )
    )
    return events


def _unpin(command: UnpinProduct, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "unpin products")
    _require_on_air(state, "unpin a product")
    if state.pin is None:
        raise DomainError("nothing_pinned", "no product is pinned")
    if command.product_id is not None and command.product_id != state.pin.product_id:
        raise DomainError(
            "not_pinned", f"product {command.product_id!r} is not the pinned product", field="product_id"
        )
    _require_brand_scope(state, command.actor, state.pin.brand_id, "product_id")
    return [_unpinned(state, state.pin, command.actor.user_id, command.at)]


def _unpinned(state: LiveState, pin: Pin, by: str, at: datetime) -> ProductUnpinned:
    return ProductUnpinned(
        live_id=state.live_id,
        product_id=pin.product_id,
        unpinned_by=by,
        live_offset_ms=_offset(state, at),
        occurred_at=at,
    )


def _showcase_item(state: LiveState, product_id: str) -> ShowcaseItem:
    item = state.showcase_item(product_id)
    if item is None:
        raise Invalid(
            "not_in_showcase", f"product {product_id!r} is not in the live's showcase", field="product_id"
        )
    return item


def _check_sku(item: ShowcaseItem, sku_id: str) -> None:
    # An empty sku_ids means every SKU of the product is offered (the catalog owns the list).
    if item.sku_ids and sku_id not in item.sku_ids:
        raise Invalid(
            "sku_not_in_showcase",
            f"SKU {sku_id!r} is not offered on this live for product {item.product_id!r}",
            field="sku_id",
        )


# --- flash deals ---------------------------------------------------------------------------


def _start_deal(command: StartFlashDeal, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "start flash deals")
    _require_on_air(state, "start a flash deal")
    if command.deal_id in state.deals:
        raise DomainError("deal_already_exists", f"deal {command.deal_id!r} already exists", field="deal_id")
    item = _showcase_item(state, command.product_id)
    _require_brand_scope(state, command.actor, item.brand_id, "product_id")
    _check_sku(item, command.sku_id)
    _check_deal_terms(command)
    at = command.at
    events: list[DomainEvent] = []
    for deal in state.deals.values():
        if deal.sku_id != command.sku_id or not deal.running():
            continue
        if not deal.due(at):
            raise DomainError(
                "deal_already_active",
                f"deal {deal.deal_id!r} is already running on SKU {deal.sku_id!r} "
                f"until {deal.ends_at.isoformat()}",
                field="sku_id",
            )
        events.append(_deal_ended(state, deal, "deadline"))
    events.append(
        FlashDealStarted(
            live_id=state.live_id,
            deal_id=command.deal_id,
            brand_id=item.brand_id,
            product_id=item.product_id,
            sku_id=command.sku_id,
            deal_price=command.deal_price,
            units=command.units,
            per_buyer_cap=command.per_buyer_cap,
            duration_ms=command.duration_ms,
            ends_at=at + command.duration_ms * _MS,
            started_by=command.actor.user_id,
            live_offset_ms=_offset(state, at),
            occurred_at=at,
        )
    )
    return events


def _check_deal_terms(command: StartFlashDeal) -> None:
    if command.deal_price.amount <= 0:
        raise Invalid("price_not_positive", "the deal price must be above zero", field="deal_price.amount")
    if command.units < 1:
        raise Invalid("units_not_positive", "a deal has at least one unit", field="units")
    if not 1 <= command.per_buyer_cap <= command.units:
        raise Invalid(
            "per_buyer_cap_out_of_range",
            f"the per-buyer cap must be between 1 and the deal's units ({command.units})",
            field="per_buyer_cap",
        )
    if not MIN_DEAL_DURATION_MS <= command.duration_ms <= MAX_DEAL_DURATION_MS:
        raise Invalid(
            "duration_out_of_range",
            f"a deal lasts between {MIN_DEAL_DURATION_MS} and {MAX_DEAL_DURATION_MS} ms",
            field="duration_ms",
        )


def _cancel_deal(command: CancelFlashDeal, state: LiveState) -> Sequence[DomainEvent]:
    _require_operator(state, command.actor, "cancel flash deals")
    deal = _deal(state, command.deal_id)
    _require_brand_scope(state, command.actor, deal.brand_id, "deal_id")
    if not deal.running():
        raise DomainError("deal_not_active", f"deal {deal.deal_id!r} has already ended", field="deal_id")
    if deal.due(command.at):
        return [_deal_ended(state, deal, "deadline")]
    return [_deal_ended(state, deal, "cancelled", at=command.at, by=command.actor.user_id)]


def _end_sold_out(command: EndSoldOutFlashDeal, state: LiveState) -> Sequence[DomainEvent]:
    deal = _deal(state, command.deal_id)
    if not deal.running():
        return []
    if deal.due(command.at):
        return [_deal_ended(state, deal, "deadline")]
    return [_deal_ended(state, deal, "sold_out", at=command.at)]


def _deal(state: LiveState, deal_id: str) -> Deal:
    deal = state.deals.get(deal_id)
    if deal is None:
        raise NotFound("deal_not_found", f"no deal {deal_id!r} on live {state.live_id!r}", field="deal_id")
    return deal


def _due_deals(state: LiveState, at: datetime) -> list[Deal]:
    return [deal for deal in state.deals.values() if deal.due(at)]


def _deal_ended(
    state: LiveState,
    deal: Deal,
    reason: DealEndReason,
    *,
    at: datetime | None = None,
    by: str | None = None,
) -> FlashDealEnded:
    """``at`` is ignored for ``deadline``: such a deal ended at its deadline (module docstring)."""
    when = deal.ends_at if reason == "deadline" or at is None else at
    return FlashDealEnded(
        live_id=state.live_id,
        deal_id=deal.deal_id,
        sku_id=deal.sku_id,
        reason=reason,
        ended_by=by,
        live_offset_ms=_offset(state, when),
        occurred_at=when,
    )


# --- payment terms -------------------------------------------------------------------------


def _offer_terms(command: OfferPaymentTerms, state: LiveState) -> Sequence[DomainEvent]:
    actor = command.actor
    _require_operator(state, actor, "offer payment terms")
    _require_on_air(state, "offer payment terms")
    if command.terms_id in state.terms_ids:
        raise DomainError(
            "terms_already_exist", f"terms {command.terms_id!r} already exist", field="terms_id"
        )
    if command.brand_id is None:
        for brand_id in state.brand_ids:
            _require_brand_scope(state, actor, brand_id, "brand_id")
    else:
        if command.brand_id not in state.brand_ids:
            raise Invalid(
                "brand_not_on_live",
                f"brand {command.brand_id!r} does not sell on this live",
                field="brand_id",
            )
        _require_brand_scope(state, actor, command.brand_id, "brand_id")
    if not 1 <= command.max_installments <= MAX_INSTALLMENTS:
        raise Invalid(
            "installments_out_of_range",
            f"installments are between 1 and {MAX_INSTALLMENTS}",
            field="max_installments",
        )
    if command.min_installment is not None and command.min_installment.amount <= 0:
        raise Invalid(
            "min_installment_not_positive",
            "the minimum installment must be above zero",
            field="min_installment.amount",
        )
    if command.valid_until is not None and command.valid_until <= command.at:
        raise Invalid("valid_until_not_in_future", "the offer must lapse in the future", field="valid_until")
    return [
        PaymentTermsOffered(
            live_id=state.live_id,
            terms_id=command.terms_id,
            brand_id=command.brand_id,
            max_installments=command.max_installments,
            interest_free=command.interest_free,
            min_installment=command.min_installment,
            valid_until=command.valid_until,
            offered_by=actor.user_id,
            live_offset_ms=_offset(state, command.at),
            occurred_at=command.at,
        )
    ]


# --- audience ------------------------------------------------------------------------------


def _record_audience(command: RecordAudienceSample, state: LiveState) -> Sequence[DomainEvent]:
    window = (command.window_start, command.window_end)
    if window == state.last_window:
        return []
    if state.status not in ("live", "ended"):
        raise DomainError("live_not_on_air", f"the live is {state.status}: it has no audience")
    assert state.started_at is not None
    if command.window_end <= command.window_start:
        raise Invalid("empty_window", "a window ends after it starts", field="window_end")
    if command.window_start < state.started_at:
        raise Invalid("window_before_live", "the window starts before the live started", field="window_start")
    if state.ended_at is not None and command.window_end > state.ended_at:
        raise Invalid("window_after_live", "the window ends after the live ended", field="window_end")
    if command.window_end > command.at:
        raise Invalid("window_not_closed", "the window has not ended yet", field="window_end")
    if state.last_window is not None and command.window_start < state.last_window[1]:
        raise DomainError(
            "window_overlaps",
            f"the window overlaps the last recorded one, which ended at {state.last_window[1].isoformat()}",
            field="window_start",
        )
    for name in ("concurrent_viewers", "peak_concurrent_viewers", "joins", "likes"):
        if getattr(command, name) < 0:
            raise Invalid("negative_count", f"{name} cannot be negative", field=name)
    if command.peak_concurrent_viewers < command.concurrent_viewers:
        raise Invalid(
            "peak_below_concurrent",
            "the window's peak cannot be below its closing concurrent viewers",
            field="peak_concurrent_viewers",
        )
    return [
        AudienceSampled(
            live_id=state.live_id,
            window_start=command.window_start,
            window_end=command.window_end,
            concurrent_viewers=command.concurrent_viewers,
            peak_concurrent_viewers=command.peak_concurrent_viewers,
            joins=command.joins,
            likes=command.likes,
            live_offset_ms=_offset(state, command.window_end),
            occurred_at=command.at,
        )
    ]
