"""Internal events of the catalog: stored on its stock streams, never published.

Public events are the contract's (``shopstream_contracts.catalog.v1``). These record what the
stock of a SKU needs to decide reservations and what its projections show, but no other service
reacts to: which product a SKU belongs to, the flash deals running on it (learnt from live) and
orders waiting for a deal the catalog has not heard of yet.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime

from shopstream_service.domain import InternalEvent


class SkuRegistered(InternalEvent):
    """The SKU's stock stream belongs to this product and brand (the first event of the stream)."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.SkuRegistered"

    sku_id: str
    product_id: str
    brand_id: str
    occurred_at: AwareDatetime


class DealOpened(InternalEvent):
    """A flash deal started on the SKU. ``units_allocated`` is what the stock could set aside
    (at most the announced units): only orders of the deal may reserve those units while it runs."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.DealOpened"

    sku_id: str
    deal_id: str
    live_id: str
    units_announced: int
    units_allocated: int
    per_buyer_cap: int
    started_at: AwareDatetime
    ends_at: AwareDatetime
    occurred_at: AwareDatetime


class DealClosed(InternalEvent):
    """A flash deal ended: its unreserved units go back to general stock."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.DealClosed"

    sku_id: str
    deal_id: str
    reason: Literal["deadline", "sold_out", "cancelled", "live_ended"]
    ended_at: AwareDatetime
    units_left: int
    occurred_at: AwareDatetime


class DealUnitsReturned(InternalEvent):
    """Released units of a deal order went back to the deal, which is still running."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.DealUnitsReturned"

    sku_id: str
    deal_id: str
    order_id: str
    buyer_id: str
    quantity: int
    units_left_after: int
    occurred_at: AwareDatetime


class ReservationDeferred(InternalEvent):
    """An order references a flash deal this SKU has not heard of yet (live's FlashDealStarted
    and orders' OrderPlaced arrive on different topics, so the order may come first). It waits
    for the deal and is decided when the deal opens, closes, or the wait expires."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.ReservationDeferred"

    sku_id: str
    reservation_id: str
    order_id: str
    buyer_id: str
    quantity: int
    deal_id: str
    placed_at: AwareDatetime
    occurred_at: AwareDatetime


class DeferredReservationWithdrawn(InternalEvent):
    """A waiting order was cancelled before its deal was known: it will never be reserved."""

    type_name: ClassVar[str] = "shopstream.catalog.internal.DeferredReservationWithdrawn"

    sku_id: str
    order_id: str
    deal_id: str
    occurred_at: AwareDatetime


INTERNAL_EVENTS: tuple[type[InternalEvent], ...] = (
    SkuRegistered,
    DealOpened,
    DealClosed,
    DealUnitsReturned,
    ReservationDeferred,
    DeferredReservationWithdrawn,
)
