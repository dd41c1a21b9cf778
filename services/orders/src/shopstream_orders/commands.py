"""The orders service's commands: pure data, everything the decider needs that is not state.

Ids (order, refund), the time (``at``, from the injected clock) and the price snapshot with its
attribution are resolved before the decider runs and travel inside the command, so the decider
stays a pure function of (command, state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shopstream_contracts import Money
from shopstream_contracts.catalog.v1 import ReservationRejectionReason
from shopstream_contracts.orders.v1 import Attribution, OrderLine, PaymentPlan


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, as far as the order's rules care: the token subject, the brands they work for
    and whether they are an admin."""

    user_id: str
    brands: frozenset[str] = frozenset()
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the buyer asked for, as sent. Two requests under one idempotency key must be equal
    field by field, or the second is refused (the key was reused for another order)."""

    sku_id: str
    quantity: int
    market: str
    live_id: str | None
    payment_method: str
    installments: int = 1
    terms_id: str | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """The price snapshot and attribution of an order, resolved from the projections at ``at``."""

    market: str
    line: OrderLine
    attribution: Attribution
    payment_plan: PaymentPlan
    total: Money


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    order_id: str
    buyer_id: str
    request: OrderRequest
    quote: Quote
    at: datetime


@dataclass(frozen=True, slots=True)
class ConfirmOrder:
    """Saga step: catalog reserved the order's units."""

    order_id: str
    reservation_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RejectOrder:
    """Saga step: catalog could not reserve the order's units."""

    order_id: str
    reason: ReservationRejectionReason
    detail: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: str
    actor: Actor
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ShipOrder:
    order_id: str
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class RefundOrder:
    """A refund of money, units or both.

    ``amount`` None means "the value of the returned units" (pro rata of the order total, see
    ``domain.units_refund``); ``quantity`` is the number of units going back to stock (0 for a
    money-only refund)."""

    order_id: str
    refund_id: str
    actor: Actor
    quantity: int
    amount: int | None
    reason: str | None
    at: datetime


OrderCommand = PlaceOrder | ConfirmOrder | RejectOrder | CancelOrder | ShipOrder | RefundOrder
