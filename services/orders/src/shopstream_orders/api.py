"""The orders HTTP API: requests ⇒ commands and queries, no business rules.

Authorization (every route needs a valid bearer token, else 401):

- ``POST /orders``: role ``viewer`` (a buyer; admins too); the buyer is the token subject.
- ``GET /orders/{id}``: the order's buyer, staff of the order's brand, or an admin. Anyone else
  gets **403** ``not_your_order`` (order ids are unguessable uuid5s, so a 403 leaks nothing a
  404 would hide, and it tells a client with the wrong token what is wrong).
- ``GET /me/orders``: anyone, for their own orders only.
- ``POST /orders/{id}/cancel``: the buyer, the brand's staff or an admin (checked by the decider).
- ``POST /orders/{id}/refunds`` and ``/ship``: role ``brand`` (staff of the order's brand, checked
  by the decider) or admin.
- ``GET /brands/{brand_id}/sales``: staff of that brand (``brand_id`` in the token's brands) or
  an admin; otherwise 403 ``not_brand_staff``.
- ``GET /skus/{sku_id}/quote``: anyone; ``GET /stats/orders``: admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shopstream_contracts import Money
from shopstream_contracts.base import Id, MarketCode, Text
from shopstream_contracts.orders.v1 import Attribution, OrderLine, PaymentPlan
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.domain import Forbidden, NotFound
from shopstream_service.http import context_of, correlation_id

from .commands import Actor, OrderRequest
from .handlers import OrderHandlers
from .projections import (
    CurrencyTotals,
    DealTotals,
    OrderRow,
    RefundRow,
    order_stats,
    order_with_refunds,
    orders_page,
    sales_totals,
)

router = APIRouter(tags=["orders"])

Buyer = Annotated[Principal, Depends(require_roles("viewer"))]
BrandStaff = Annotated[Principal, Depends(require_roles("brand"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
OrderId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$", description="The order.")]
IdempotencyKey = Annotated[
    str,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Client-chosen key of this request (a UUID is best): the same key again returns "
        "the same result instead of acting twice.",
    ),
]
Status = Literal["placed", "confirmed", "rejected", "cancelled", "refunded"]
PaymentMethod = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="card, pix, boleto, …")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaymentPlanIn(_In):
    method: PaymentMethod
    installments: int = Field(default=1, ge=1, le=48, description="1 means paid at once.")
    terms_id: Id | None = Field(default=None, description="Payment terms offered on the live, if used.")


class PlaceOrderIn(_In):
    sku_id: Id
    quantity: int = Field(ge=1, le=10_000)
    market: MarketCode = Field(description="The buyer's market (ISO-3166-1 alpha-2): it sets the list price.")
    live_id: Id | None = Field(
        default=None, description="The live the buyer buys from; none for a web order."
    )
    payment_plan: PaymentPlanIn


class CancelIn(_In):
    reason: Text | None = None


class RefundIn(_In):
    quantity: int = Field(
        default=0, ge=0, le=10_000, description="Units going back to stock; 0 for money only."
    )
    amount: int | None = Field(
        default=None,
        ge=1,
        description="Minor units to refund. Omitted: the returned units' pro rata share of the order total "
        "(cumulative floor, so returning every unit refunds the total exactly).",
    )
    reason: Text | None = None


class RefundOut(BaseModel):
    refund_id: str
    amount: Money
    quantity: int
    refunded_by: str
    reason: str | None
    occurred_at: datetime


class OrderSummary(BaseModel):
    order_id: str
    buyer_id: str
    status: Status
    reason: str | None = Field(description="Why the order was rejected (the catalog's reason code).")
    detail: str | None
    market: str
    line: OrderLine
    attribution: Attribution
    payment_plan: PaymentPlan
    total: Money
    reservation_id: str | None
    shipped: bool
    refunded: Money = Field(description="Paid back so far, by refunds or the cancellation.")
    returned_units: int
    cancelled_by: str | None
    cancel_reason: str | None
    placed_at: datetime
    updated_at: datetime


class OrderOut(OrderSummary):
    refunds: list[RefundOut]


class OrderPage(BaseModel):
    orders: list[OrderSummary]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null at the end."
    )


class SalesTotalsOut(BaseModel):
    currency: str
    orders: int
    gross: int = Field(description="Total of the orders that were confirmed, in minor units.")
    refunded: int
    net: int
    units_sold: int
    units_returned: int


class BrandSales(OrderPage):
    brand_id: str
    totals: list[SalesTotalsOut]


class DealTotalsOut(BaseModel):
    deal_id: str
    confirmed_orders: int
    units_sold: int
    buyers: int
    most_units_bought_by_one_buyer: int
    most_units_held_by_one_buyer: int


class OrderStatsOut(BaseModel):
    live_id: str | None
    by_status: dict[str, int]
    rejected_by_reason: dict[str, int]
    sales: list[SalesTotalsOut]
    deals: list[DealTotalsOut]


class QuoteOut(BaseModel):
    market: str
    line: OrderLine
    attribution: Attribution
    payment_plan: PaymentPlan
    total: Money
    at: datetime


class RefundResult(BaseModel):
    refund: RefundOut
    order: OrderOut


def _actor(principal: Principal) -> Actor:
    return Actor(
        principal.subject,
        brands=frozenset(brand for brand in principal.brands if principal.staff_of(brand)),
        is_admin=principal.is_admin,
    )


def _fields(row: OrderRow) -> dict[str, Any]:
    placed = row.placed
    return {
        "order_id": row.order_id,
        "buyer_id": row.buyer_id,
        "status": row.status,
        "reason": row.reason,
        "detail": row.detail,
        "market": placed.market,
        "line": placed.line,
        "attribution": placed.attribution,
        "payment_plan": placed.payment_plan,
        "total": placed.total,
        "reservation_id": row.reservation_id,
        "shipped": row.shipped,
        "refunded": Money(amount=row.refunded, currency=row.currency),
        "returned_units": row.returned_units,
        "cancelled_by": row.cancelled_by,
        "cancel_reason": row.cancel_reason,
        "placed_at": datetime.fromisoformat(row.placed_at),
        "updated_at": datetime.fromisoformat(row.updated_at),
    }


def _refund(row: RefundRow) -> RefundOut:
    return RefundOut(
        refund_id=row.refund_id,
        amount=Money(amount=row.amount, currency=row.currency),
        quantity=row.quantity,
        refunded_by=row.refunded_by,
        reason=row.reason,
        occurred_at=datetime.fromisoformat(row.occurred_at),
    )


def _totals(totals: CurrencyTotals) -> SalesTotalsOut:
    return SalesTotalsOut(
        currency=totals.currency,
        orders=totals.orders,
        gross=totals.gross,
        refunded=totals.refunded,
        net=totals.net,
        units_sold=totals.units_sold,
        units_returned=totals.units_returned,
    )


def _deal(totals: DealTotals) -> DealTotalsOut:
    return DealTotalsOut(
        deal_id=totals.deal_id,
        confirmed_orders=totals.confirmed_orders,
        units_sold=totals.units_sold,
        buyers=totals.buyers,
        most_units_bought_by_one_buyer=totals.most_units_bought_by_one_buyer,
        most_units_held_by_one_buyer=totals.most_units_held_by_one_buyer,
    )


def _page(rows: list[OrderRow], limit: int) -> tuple[list[OrderSummary], int | None]:
    return [OrderSummary(**_fields(row)) for row in rows], (rows[-1].seq if len(rows) == limit else None)


async def _order(request: Request, order_id: str) -> OrderOut:
    found = await order_with_refunds(context_of(request).readmodel, order_id)
    if found is None:
        raise NotFound("order_not_found", f"no order {order_id!r}")
    row, refunds = found
    return OrderOut(**_fields(row), refunds=[_refund(r) for r in refunds])


def _may_see(principal: Principal, order: OrderOut) -> bool:
    return (
        principal.is_admin or principal.subject == order.buyer_id or principal.staff_of(order.line.brand_id)
    )


@router.post(
    "/orders",
    status_code=201,
    responses={200: {"model": OrderOut, "description": "This Idempotency-Key already placed this order."}},
)
async def place_order(
    body: PlaceOrderIn,
    idempotency_key: IdempotencyKey,
    principal: Buyer,
    request: Request,
    response: Response,
) -> OrderOut:
    """Place an order; the price and attribution are decided by orders at this moment. The order is
    ``placed`` until catalog reserves its units (``confirmed``) or cannot (``rejected``, with the
    reason): poll ``GET /orders/{order_id}``."""
    order_request = OrderRequest(
        sku_id=body.sku_id,
        quantity=body.quantity,
        market=body.market,
        live_id=body.live_id,
        payment_method=body.payment_plan.method,
        installments=body.payment_plan.installments,
        terms_id=body.payment_plan.terms_id,
    )
    placed = await OrderHandlers(context_of(request)).place(
        principal.subject, idempotency_key, order_request, correlation_id(request)
    )
    if not placed.created:
        response.status_code = 200
    return await _order(request, placed.order_id)


@router.get("/orders/{order_id}")
async def get_order(order_id: OrderId, principal: Authenticated, request: Request) -> OrderOut:
    order = await _order(request, order_id)
    if not _may_see(principal, order):
        raise Forbidden("not_your_order", "only the buyer, the brand's staff or an admin may see this order")
    return order


@router.get("/me/orders")
async def my_orders(
    principal: Authenticated,
    request: Request,
    status: Status | None = None,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OrderPage:
    """The caller's own orders, newest first."""
    db = context_of(request).readmodel
    rows = await orders_page(
        db, column="buyer_id", value=principal.subject, status=status, before=before, limit=limit
    )
    orders, next_before = _page(rows, limit)
    return OrderPage(orders=orders, next_before=next_before)


@router.post("/orders/{order_id}/cancel")
async def cancel_order(
    order_id: OrderId, principal: Authenticated, request: Request, body: CancelIn | None = None
) -> OrderOut:
    """Cancel a confirmed order before it ships and before any refund: its whole total goes back
    to the buyer and its units back to stock. Cancelling a cancelled order changes nothing."""
    await OrderHandlers(context_of(request)).cancel(
        order_id, _actor(principal), body.reason if body else None, correlation_id(request)
    )
    return await _order(request, order_id)


@router.post("/orders/{order_id}/ship")
async def ship_order(order_id: OrderId, principal: BrandStaff, request: Request) -> OrderOut:
    """Mark a confirmed order shipped: from then on it can be refunded, no longer cancelled."""
    await OrderHandlers(context_of(request)).ship(order_id, _actor(principal), correlation_id(request))
    return await _order(request, order_id)


@router.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    responses={200: {"model": RefundResult, "description": "This Idempotency-Key already made this refund."}},
)
async def refund_order(
    order_id: OrderId,
    body: RefundIn,
    principal: BrandStaff,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200, pattern=r"^[!-~]+$")] = None,
) -> RefundResult:
    """Refund money, units or both; all refunds of an order never exceed its total."""
    refunded = await OrderHandlers(context_of(request)).refund(
        order_id,
        _actor(principal),
        quantity=body.quantity,
        amount=body.amount,
        reason=body.reason,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id(request),
    )
    if not refunded.created:
        response.status_code = 200
    order = await _order(request, order_id)
    refund = next(r for r in order.refunds if r.refund_id == refunded.refund_id)
    return RefundResult(refund=refund, order=order)


@router.get("/brands/{brand_id}/sales")
async def brand_sales(
    brand_id: Annotated[str, Path(pattern=r"^[!-~]{1,128}$")],
    principal: Authenticated,
    request: Request,
    status: Status | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> BrandSales:
    """A brand's orders, newest first, with its sales totals per currency."""
    if not (principal.is_admin or principal.staff_of(brand_id)):
        raise Forbidden("not_brand_staff", f"only staff of brand {brand_id!r} or an admin may see its sales")
    db = context_of(request).readmodel
    rows = await orders_page(db, column="brand_id", value=brand_id, status=status, before=before, limit=limit)
    totals = await sales_totals(db, column="brand_id", value=brand_id)
    orders, next_before = _page(rows, limit)
    return BrandSales(
        brand_id=brand_id, totals=[_totals(t) for t in totals], orders=orders, next_before=next_before
    )


@router.get("/skus/{sku_id}/quote")
async def quote_sku(
    sku_id: Annotated[str, Path(pattern=r"^[!-~]{1,128}$")],
    market: Annotated[str, Query(pattern=r"^[A-Z]{2}$")],
    _: Authenticated,
    request: Request,
    live_id: Annotated[str | None, Query(pattern=r"^[!-~]{1,128}$")] = None,
    quantity: Annotated[int, Query(ge=1, le=10_000)] = 1,
    installments: Annotated[int, Query(ge=1, le=48)] = 1,
    terms_id: Annotated[str | None, Query(pattern=r"^[!-~]{1,128}$")] = None,
) -> QuoteOut:
    """What an order would cost right now, with the attribution it would carry (nothing is placed)."""
    context = context_of(request)
    at = context.clock.now()
    order_request = OrderRequest(sku_id, quantity, market, live_id, "card", installments, terms_id)
    priced = await OrderHandlers(context).quote(order_request, at)
    return QuoteOut(
        market=priced.market,
        line=priced.line,
        attribution=priced.attribution,
        payment_plan=priced.payment_plan,
        total=priced.total,
        at=at,
    )


@router.get("/stats/orders")
async def stats(
    _: Admin,
    request: Request,
    live_id: Annotated[str | None, Query(pattern=r"^[!-~]{1,128}$")] = None,
) -> OrderStatsOut:
    """Orders by status and rejection reason, sales and flash-deal figures, for one live or all."""
    figures = await order_stats(context_of(request).readmodel, live_id)
    return OrderStatsOut(
        live_id=live_id,
        by_status=figures.by_status,
        rejected_by_reason=figures.rejected_by_reason,
        sales=[_totals(t) for t in figures.sales],
        deals=[_deal(d) for d in figures.deals],
    )
