"""HTTP API of the live service: requests ⇒ commands, reads ⇒ the ``lives`` projection.

Who may do what to a given live (its hosts, its brands' staff, admins) is decided by the domain;
routes only admit the roles that could ever qualify, so a viewer is told ``role_required`` at once.
Reads are open to any authenticated user.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopstream_contracts import Money
from shopstream_contracts.base import Id, PositiveCount, Text, Title, UtcDateTime
from shopstream_contracts.live.v1 import LiveBrand, ShowcaseItem
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.domain import DomainError, NotFound
from shopstream_service.http import context_of, correlation_id
from shopstream_service.runtime import ServiceContext

from . import handlers, queries
from .audience import AudienceBoard
from .commands import (
    Actor,
    CancelFlashDeal,
    CancelLive,
    EndLive,
    LiveCommand,
    OfferPaymentTerms,
    PinProduct,
    RescheduleLive,
    ScheduleLive,
    StartFlashDeal,
    StartLive,
    UnpinProduct,
)

_IDEMPOTENCY = uuid.UUID("9b0e6c1a-47d2-5f3e-8a61-2c9d7e4b5f03")
"""Namespace of command ids derived from Idempotency-Key headers; fixed forever."""

Operator = Annotated[Principal, Depends(require_roles("influencer", "brand"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200, description="Send the same key again to retry safely: the first result is returned."
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleBody(_Body):
    title: Title
    description: Text | None = None
    scheduled_start_at: UtcDateTime
    host_ids: list[Id] = Field(min_length=1, description="The influencers hosting the live; the first leads.")
    brands: list[LiveBrand] = Field(min_length=1, description="Brands selling, each with its agreement.")
    showcase: list[ShowcaseItem] = Field(default_factory=list)


class RescheduleBody(_Body):
    scheduled_start_at: UtcDateTime


class CancelBody(_Body):
    reason: Text | None = None


class PinBody(_Body):
    product_id: Id
    sku_id: Id | None = None


class DealBody(_Body):
    product_id: Id
    sku_id: Id
    deal_price: Money
    units: PositiveCount
    per_buyer_cap: PositiveCount
    duration_ms: PositiveCount


class TermsBody(_Body):
    brand_id: Id | None = Field(default=None, description="The brand the terms apply to; null: every brand.")
    max_installments: int
    interest_free: bool
    min_installment: Money | None = None
    valid_until: UtcDateTime | None = None


class HeartbeatBody(_Body):
    likes: int = Field(default=0, ge=0, le=1000, description="Likes tapped since the previous heartbeat.")


class PinState(BaseModel):
    pin: queries.PinView | None


class HeartbeatAccepted(BaseModel):
    live_id: str
    viewer_id: str


def _actor(principal: Principal) -> Actor:
    return Actor(principal.subject, principal.roles, principal.brands)


def _command_id(principal: Principal, action: str, key: str | None) -> uuid.UUID:
    return uuid.uuid5(_IDEMPOTENCY, f"{principal.subject}/{action}/{key}") if key else uuid.uuid4()


async def _run(request: Request, command: LiveCommand, command_id: uuid.UUID | None = None) -> ServiceContext:
    """Executes ``command`` and returns once every projection shows its effect."""
    context = context_of(request)
    # A repeated command id (same Idempotency-Key) is answered by the kit as the first time was.
    outcome = await handlers.execute(
        context, command, command_id=command_id, correlation_id=correlation_id(request)
    )
    await context.wait_for(outcome.position)
    return context


async def _live(context: ServiceContext, live_id: str) -> queries.LiveView:
    view = await queries.live(context.readmodel, live_id, context.clock.now())
    if view is None:
        raise NotFound("live_not_found", f"no live {live_id!r}", field="live_id")
    return view


async def _require_live(context: ServiceContext, live_id: str) -> None:
    if not await queries.exists(context.readmodel, live_id):
        raise NotFound("live_not_found", f"no live {live_id!r}", field="live_id")


def build_router(board: AudienceBoard) -> APIRouter:
    router = APIRouter(prefix="/lives", tags=["lives"])

    @router.post("", status_code=201, summary="Schedule a live")
    async def schedule(
        body: ScheduleBody, principal: Operator, request: Request, idempotency_key: IdempotencyKey = None
    ) -> queries.LiveView:
        command_id = _command_id(principal, "schedule", idempotency_key)
        context = context_of(request)
        command = ScheduleLive(
            live_id=f"liv_{command_id.hex}",
            title=body.title,
            description=body.description,
            scheduled_start_at=body.scheduled_start_at,
            host_ids=tuple(body.host_ids),
            brands=tuple(body.brands),
            showcase=tuple(body.showcase),
            actor=_actor(principal),
            at=context.clock.now(),
        )
        await _run(request, command, command_id)
        return await _live(context, command.live_id)

    @router.get("", summary="List lives, newest planned start first")
    async def list_lives(
        _: Authenticated,
        request: Request,
        status: queries.LiveStatus | None = None,
        host_id: str | None = None,
        brand_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[queries.LiveSummary]:
        return await queries.lives(
            context_of(request).readmodel, status=status, host_id=host_id, brand_id=brand_id, limit=limit
        )

    @router.get(
        "/{live_id}", summary="A live: status, hosts, brands, showcase, pin, active deals, terms, audience"
    )
    async def read_live(live_id: Id, _: Authenticated, request: Request) -> queries.LiveView:
        return await _live(context_of(request), live_id)

    @router.post("/{live_id}/reschedule", summary="Move a scheduled live to another start")
    async def reschedule(
        live_id: Id, body: RescheduleBody, principal: Operator, request: Request
    ) -> queries.LiveView:
        now = context_of(request).clock.now()
        context = await _run(
            request, RescheduleLive(live_id, body.scheduled_start_at, _actor(principal), now)
        )
        return await _live(context, live_id)

    @router.post("/{live_id}/cancel", summary="Cancel a scheduled live")
    async def cancel(
        live_id: Id, principal: Operator, request: Request, body: CancelBody | None = None
    ) -> queries.LiveView:
        now = context_of(request).clock.now()
        reason = body.reason if body else None
        context = await _run(request, CancelLive(live_id, _actor(principal), now, reason=reason))
        return await _live(context, live_id)

    @router.post("/{live_id}/start", summary="Go on air")
    async def start(live_id: Id, principal: Operator, request: Request) -> queries.LiveView:
        now = context_of(request).clock.now()
        context = await _run(request, StartLive(live_id, _actor(principal), now))
        return await _live(context, live_id)

    @router.post("/{live_id}/end", summary="Go off air (running deals end, the pin is taken down)")
    async def end(live_id: Id, principal: Operator, request: Request) -> queries.LiveView:
        now = context_of(request).clock.now()
        context = await _run(request, EndLive(live_id, _actor(principal), now))
        return await _live(context, live_id)

    @router.get("/{live_id}/pin", summary="The product pinned now, if any")
    async def read_pin(live_id: Id, _: Authenticated, request: Request) -> PinState:
        return PinState(pin=(await _live(context_of(request), live_id)).pin)

    @router.put("/{live_id}/pin", summary="Pin a showcase product (replaces the current pin)")
    async def pin(live_id: Id, body: PinBody, principal: Operator, request: Request) -> PinState:
        now = context_of(request).clock.now()
        command = PinProduct(live_id, body.product_id, _actor(principal), now, sku_id=body.sku_id)
        context = await _run(request, command)
        return PinState(pin=(await _live(context, live_id)).pin)

    @router.delete("/{live_id}/pin", summary="Take the pinned product off screen")
    async def unpin(
        live_id: Id,
        principal: Operator,
        request: Request,
        product_id: Annotated[str | None, Query(description="Only if this is the pinned product.")] = None,
    ) -> PinState:
        now = context_of(request).clock.now()
        context = await _run(request, UnpinProduct(live_id, _actor(principal), now, product_id=product_id))
        return PinState(pin=(await _live(context, live_id)).pin)

    @router.post("/{live_id}/deals", status_code=201, summary="Start a flash deal on a showcase SKU")
    async def start_deal(
        live_id: Id,
        body: DealBody,
        principal: Operator,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> queries.DealView:
        context = context_of(request)
        command_id = _command_id(principal, f"deal/{live_id}", idempotency_key)
        command = StartFlashDeal(
            live_id=live_id,
            deal_id=f"deal_{command_id.hex}",
            product_id=body.product_id,
            sku_id=body.sku_id,
            deal_price=body.deal_price,
            units=body.units,
            per_buyer_cap=body.per_buyer_cap,
            duration_ms=body.duration_ms,
            actor=_actor(principal),
            at=context.clock.now(),
        )
        await _run(request, command, command_id)
        return await _deal(context, live_id, command.deal_id)

    @router.get("/{live_id}/deals", summary="Flash deals of a live, in start order")
    async def list_deals(
        live_id: Id,
        _: Authenticated,
        request: Request,
        active: Annotated[bool, Query(description="Only the deals running now.")] = False,
    ) -> list[queries.DealView]:
        context = context_of(request)
        await _require_live(context, live_id)
        return await queries.deals(context.readmodel, live_id, context.clock.now(), active_only=active)

    @router.get("/{live_id}/deals/{deal_id}", summary="One flash deal")
    async def read_deal(live_id: Id, deal_id: str, _: Authenticated, request: Request) -> queries.DealView:
        return await _deal(context_of(request), live_id, deal_id)

    @router.post("/{live_id}/deals/{deal_id}/cancel", summary="Stop a running flash deal")
    async def cancel_deal(
        live_id: Id, deal_id: str, principal: Operator, request: Request
    ) -> queries.DealView:
        now = context_of(request).clock.now()
        context = await _run(request, CancelFlashDeal(live_id, deal_id, _actor(principal), now))
        return await _deal(context, live_id, deal_id)

    @router.post("/{live_id}/payment-terms", status_code=201, summary="Offer payment terms during the live")
    async def offer_terms(
        live_id: Id,
        body: TermsBody,
        principal: Operator,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> queries.TermsView:
        context = context_of(request)
        command_id = _command_id(principal, f"terms/{live_id}", idempotency_key)
        command = OfferPaymentTerms(
            live_id=live_id,
            terms_id=f"terms_{command_id.hex}",
            max_installments=body.max_installments,
            interest_free=body.interest_free,
            actor=_actor(principal),
            at=context.clock.now(),
            brand_id=body.brand_id,
            min_installment=body.min_installment,
            valid_until=body.valid_until,
        )
        await _run(request, command, command_id)
        offered = await queries.payment_terms(context.readmodel, live_id, context.clock.now())
        return next(terms for terms in offered if terms.terms_id == command.terms_id)

    @router.get("/{live_id}/payment-terms", summary="Payment terms offered on a live")
    async def list_terms(live_id: Id, _: Authenticated, request: Request) -> list[queries.TermsView]:
        context = context_of(request)
        await _require_live(context, live_id)
        return await queries.payment_terms(context.readmodel, live_id, context.clock.now())

    @router.post(
        "/{live_id}/audience/heartbeats",
        status_code=202,
        summary="A viewer is watching (send every few seconds, with the likes tapped meanwhile)",
    )
    async def heartbeat(
        live_id: Id, principal: Authenticated, request: Request, body: HeartbeatBody | None = None
    ) -> HeartbeatAccepted:
        context = context_of(request)
        target = await queries.audience_target(context.readmodel, live_id)
        if target is None:
            raise NotFound("live_not_found", f"no live {live_id!r}", field="live_id")
        if target.status != "live" or target.started_at is None:
            raise DomainError("live_not_on_air", f"the live is {target.status}, not on air")
        now = context.clock.now()
        board.open(live_id, started_at=target.started_at, last_window_end=target.last_window_end, now=now)
        board.heartbeat(live_id, principal.subject, now, body.likes if body else 0)
        return HeartbeatAccepted(live_id=live_id, viewer_id=principal.subject)

    @router.get("/{live_id}/audience", summary="Audience so far: last window's viewers, peak, joins, likes")
    async def audience(live_id: Id, _: Authenticated, request: Request) -> queries.AudienceView:
        return (await _live(context_of(request), live_id)).audience

    @router.get("/{live_id}/timeline", summary="Everything that happened on a live, in order, with offsets")
    async def timeline(
        live_id: Id,
        _: Authenticated,
        request: Request,
        after: Annotated[int, Query(ge=0, description="Only entries after this position.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        event_type: Annotated[
            str | None, Query(alias="type", description="Only this event type, e.g. ProductPinned.")
        ] = None,
    ) -> list[queries.TimelineEntry]:
        context = context_of(request)
        await _require_live(context, live_id)
        return await queries.timeline(
            context.readmodel, live_id, after=after, limit=limit, event_type=event_type
        )

    return router


async def _deal(context: ServiceContext, live_id: str, deal_id: str) -> queries.DealView:
    view = await queries.deal(context.readmodel, live_id, deal_id, context.clock.now())
    if view is None:
        await _require_live(context, live_id)
        raise NotFound("deal_not_found", f"no deal {deal_id!r} on live {live_id!r}", field="deal_id")
    return view
