"""Internal events: the commission service's own bookkeeping, stored but never published.

An order's commission is allocated once, on its own stream, before any influencer's ledger is
touched: the split is decided in one place (so co-hosts' parts always sum to the whole), and a
later cancellation or refund finds there which ledgers hold an accrual for the order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shopstream_contracts.base import BasisPoints, Id, Money, PositiveCount, UtcDateTime
from shopstream_service.domain import InternalEvent


class AllocatedPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    influencer_id: Id
    accrual_id: Id
    share_bps: BasisPoints
    amount: Money


class OrderCommissionAllocated(InternalEvent):
    """Who earns what on an order, under which agreement version."""

    type_name = "shopstream.commission.internal.OrderCommissionAllocated"

    order_id: Id
    live_id: Id
    brand_id: Id
    agreement_id: Id
    agreement_version: PositiveCount
    rate_bps: BasisPoints
    base: Money
    commission: Money
    """floor(base × rate / 10000): what the parts sum to."""
    sold_at: UtcDateTime
    hold_until: UtcDateTime
    parts: list[AllocatedPart] = Field(min_length=1)
    """One per hosting party, lead host first."""


NotAllocatedReason = Literal[
    "no_agreement", "unknown_agreement", "brand_mismatch", "no_version_in_force", "no_party_hosted"
]


class OrderCommissionNotAllocated(InternalEvent):
    """The order earns no commission, and why (kept so the decision is visible and final)."""

    type_name = "shopstream.commission.internal.OrderCommissionNotAllocated"

    order_id: Id
    live_id: Id
    brand_id: Id
    agreement_id: Id | None
    reason: NotAllocatedReason
    detail: str


INTERNAL_EVENTS: tuple[type[InternalEvent], ...] = (OrderCommissionAllocated, OrderCommissionNotAllocated)
