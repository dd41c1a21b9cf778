"""The order aggregate: one stream per order, from placement to its last refund.

Life cycle::

    placed ──StockReserved──► confirmed ──► cancelled            (before shipping, nothing refunded)
       │                         │
       └─StockReservationRejected─► rejected     └──► refunded    (partial refunds accumulate;
                                                                   "refunded" once all is paid back)

Rules the decider enforces:

- Placing is idempotent per order id (derived from buyer and idempotency key): the same request
  again changes nothing, a different request under the same id is refused.
- Saga answers (confirm, reject) act only on a placed order; any later or repeated answer is
  ignored, never an error, so the policy that issues them cannot get stuck.
- Cancel: the buyer, the brand's staff or an admin, only while confirmed, not shipped and not
  refunded at all (a refunded order is settled by further refunds instead).
- Refund: the brand's staff or an admin, only once confirmed; the refunds of an order never
  add up to more than its total, and never return more units than it has.
- Money is integer minor units. A refund by returned units is the pro rata share of the order
  total, floored per cumulative step (see ``units_refund``): returning every unit, in any number
  of refunds, refunds exactly the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from shopstream_contracts import Money
from shopstream_contracts.orders.v1 import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
)
from shopstream_service.domain import DomainError, DomainEvent, Forbidden, Invalid, NotFound

from .commands import (
    Actor,
    CancelOrder,
    ConfirmOrder,
    OrderCommand,
    OrderRequest,
    PlaceOrder,
    RefundOrder,
    RejectOrder,
    ShipOrder,
)
from .events import OrderShipped

OrderStatus = Literal["placed", "confirmed", "rejected", "cancelled", "refunded"]


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Order:
    placed: OrderPlaced
    """The placement, with the price snapshot and attribution every later event repeats."""
    status: OrderStatus = "placed"
    reservation_id: str | None = None
    shipped: bool = False
    refunds: tuple[Refund, ...] = ()

    @property
    def order_id(self) -> str:
        return self.placed.order_id

    @property
    def buyer_id(self) -> str:
        return self.placed.buyer_id

    @property
    def brand_id(self) -> str:
        return self.placed.line.brand_id

    @property
    def total(self) -> Money:
        return self.placed.total

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds)

    @property
    def returned_units(self) -> int:
        return sum(r.quantity for r in self.refunds)

    def refund(self, refund_id: str) -> Refund | None:
        return next((r for r in self.refunds if r.refund_id == refund_id), None)


OrderState = Order | None


def request_of(placed: OrderPlaced) -> OrderRequest:
    """The request an order was placed with, as the buyer sent it."""
    plan = placed.payment_plan
    return OrderRequest(
        sku_id=placed.line.sku_id,
        quantity=placed.line.quantity,
        market=placed.market,
        live_id=placed.attribution.live_id,
        payment_method=plan.method,
        installments=plan.installments,
        terms_id=plan.terms_id,
    )


def ensure_same_request(order: Order, buyer_id: str, request: OrderRequest) -> None:
    """Refuse a second, different order under an idempotency key that already placed one."""
    if order.buyer_id != buyer_id or request_of(order.placed) != request:
        raise DomainError(
            "idempotency_key_reused",
            "this Idempotency-Key already placed a different order; use a new key for a new order",
        )


def units_refund(total: int, quantity: int, returned_before: int, returning: int) -> int:
    """The share of ``total`` that ``returning`` more units are worth, after ``returned_before``.

    Each unit is worth ``total / quantity``, which need not be a whole number of minor units.
    Flooring each refund on its own would leave cents unrefunded; flooring the *cumulative*
    share instead (``⌊total·k/quantity⌋`` after k units) makes the refunds telescope: they
    differ by at most one minor unit from the exact share and those of all units sum to the total.
    """
    return total * (returned_before + returning) // quantity - total * returned_before // quantity


class OrderDecider:
    def initial_state(self) -> OrderState:
        return None

    def evolve(self, state: OrderState, event: DomainEvent) -> OrderState:
        if isinstance(event, OrderPlaced):
            return Order(placed=event)
        if state is None:
            raise ValueError(f"{type(event).__name__} before OrderPlaced in an order stream")
        match event:
            case OrderConfirmed():
                return replace(state, status="confirmed", reservation_id=event.reservation_id)
            case OrderRejected():
                return replace(state, status="rejected")
            case OrderCancelled():
                return replace(state, status="cancelled")
            case OrderShipped():
                return replace(state, shipped=True)
            case OrderRefunded():
                refund = Refund(event.refund_id, event.amount.amount, event.quantity)
                status: OrderStatus = "refunded" if event.fully_refunded else state.status
                return replace(state, status=status, refunds=(*state.refunds, refund))
        return state

    def decide(self, command: OrderCommand, state: OrderState) -> Sequence[DomainEvent]:
        match command:
            case PlaceOrder():
                return _place(command, state)
            case ConfirmOrder():
                return _confirm(command, state)
            case RejectOrder():
                return _reject(command, state)
            case CancelOrder():
                return _cancel(command, _existing(state))
            case ShipOrder():
                return _ship(command, _existing(state))
            case RefundOrder():
                return _refund(command, _existing(state))


def _existing(state: OrderState) -> Order:
    if state is None:
        raise NotFound("order_not_found", "no such order")
    return state


def _is_brand_staff(actor: Actor, order: Order) -> bool:
    return actor.is_admin or order.brand_id in actor.brands


def _place(command: PlaceOrder, state: OrderState) -> Sequence[DomainEvent]:
    if state is not None:
        ensure_same_request(state, command.buyer_id, command.request)
        return []
    quote = command.quote
    return [
        OrderPlaced(
            order_id=command.order_id,
            buyer_id=command.buyer_id,
            market=quote.market,
            line=quote.line,
            attribution=quote.attribution,
            payment_plan=quote.payment_plan,
            total=quote.total,
            occurred_at=command.at,
        )
    ]


def _confirm(command: ConfirmOrder, state: OrderState) -> Sequence[DomainEvent]:
    # Catalog answers each order once; anything else (a replayed answer, an answer for an order
    # this store never placed) is ignored so the saga policy never stalls on it.
    if state is None or state.status != "placed":
        return []
    placed = state.placed
    return [
        OrderConfirmed(
            order_id=placed.order_id,
            buyer_id=placed.buyer_id,
            reservation_id=command.reservation_id,
            market=placed.market,
            line=placed.line,
            attribution=placed.attribution,
            total=placed.total,
            occurred_at=command.at,
        )
    ]


def _reject(command: RejectOrder, state: OrderState) -> Sequence[DomainEvent]:
    if state is None or state.status != "placed":
        return []
    return [
        OrderRejected(
            order_id=state.order_id,
            buyer_id=state.buyer_id,
            reason=command.reason,
            detail=command.detail,
            occurred_at=command.at,
        )
    ]


def _refuse_unless_settled(order: Order, action: str) -> None:
    """Cancel, ship and refund need a confirmed sale."""
    if order.status == "placed":
        raise DomainError("order_not_confirmed", f"the order is not confirmed yet; {action} it once it is")
    if order.status == "rejected":
        raise DomainError("order_rejected", f"a rejected order cannot be {action}ed: nothing was sold")


def _cancel(command: CancelOrder, order: Order) -> Sequence[DomainEvent]:
    actor = command.actor
    if actor.user_id != order.buyer_id and not _is_brand_staff(actor, order):
        raise Forbidden("not_your_order", "only the buyer, the brand's staff or an admin may cancel an order")
    if order.status == "cancelled":
        return []
    _refuse_unless_settled(order, "cancel")
    if order.refunds:
        raise DomainError(
            "order_refunded", "the order was already (partly) refunded; refund the rest instead of cancelling"
        )
    if order.shipped:
        raise DomainError("order_shipped", "the order has shipped; it can only be refunded now")
    line = order.placed.line
    return [
        OrderCancelled(
            order_id=order.order_id,
            buyer_id=order.buyer_id,
            brand_id=order.brand_id,
            sku_id=line.sku_id,
            quantity=line.quantity,
            refund=order.total,
            cancelled_by=actor.user_id,
            reason=command.reason,
            occurred_at=command.at,
        )
    ]


def _ship(command: ShipOrder, order: Order) -> Sequence[DomainEvent]:
    if not _is_brand_staff(command.actor, order):
        raise Forbidden("not_brand_staff", "only the brand's staff or an admin may ship an order")
    if order.shipped:
        return []
    _refuse_unless_settled(order, "ship")
    if order.status == "cancelled":
        raise DomainError("order_cancelled", "a cancelled order cannot be shipped")
    if order.status == "refunded":
        raise DomainError("order_refunded", "a fully refunded order cannot be shipped")
    return [OrderShipped(order_id=order.order_id, shipped_by=command.actor.user_id, occurred_at=command.at)]


def _refund(command: RefundOrder, order: Order) -> Sequence[DomainEvent]:
    if not _is_brand_staff(command.actor, order):
        raise Forbidden("not_brand_staff", "only the brand's staff or an admin may refund an order")
    earlier = order.refund(command.refund_id)
    if earlier is not None:
        if earlier.quantity == command.quantity and command.amount in (None, earlier.amount):
            return []
        raise DomainError(
            "idempotency_key_reused", "this Idempotency-Key already made a different refund of this order"
        )
    _refuse_unless_settled(order, "refund")
    if order.status == "cancelled":
        raise DomainError("order_cancelled", "the order was cancelled; its whole total was already returned")
    total = order.total
    remaining = total.amount - order.refunded
    if remaining == 0:
        raise DomainError("order_fully_refunded", "the order's whole total was already refunded")
    quantity = order.placed.line.quantity
    if command.quantity < 0:
        raise Invalid("invalid_quantity", "quantity cannot be negative", field="quantity")
    if command.quantity > quantity - order.returned_units:
        raise Invalid(
            "refund_quantity_exceeds_order",
            f"only {quantity - order.returned_units} unit(s) of this order can still be returned",
            field="quantity",
        )
    amount = command.amount
    if amount is None:
        if command.quantity == 0:
            raise Invalid("empty_refund", "give an amount, units to return, or both", field="amount")
        amount = min(units_refund(total.amount, quantity, order.returned_units, command.quantity), remaining)
        if amount == 0:
            raise Invalid(
                "refund_amount_zero", "the returned units are worth nothing; give an amount", field="amount"
            )
    elif amount < 1:
        raise Invalid("invalid_amount", "a refund amount must be at least one minor unit", field="amount")
    elif amount > remaining:
        raise Invalid(
            "refund_exceeds_paid",
            f"at most {remaining} {total.currency} minor units of this order are left to refund",
            field="amount",
        )
    total_refunded = order.refunded + amount
    return [
        OrderRefunded(
            order_id=order.order_id,
            buyer_id=order.buyer_id,
            brand_id=order.brand_id,
            refund_id=command.refund_id,
            sku_id=order.placed.line.sku_id,
            amount=Money(amount=amount, currency=total.currency),
            quantity=command.quantity,
            total_refunded=Money(amount=total_refunded, currency=total.currency),
            order_total=total,
            fully_refunded=total_refunded == total.amount,
            refunded_by=command.actor.user_id,
            reason=command.reason,
            occurred_at=command.at,
        )
    ]
