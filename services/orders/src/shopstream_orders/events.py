"""Internal events of the orders service: stored in its event store, never published.

Public events are the contract's (``shopstream_contracts.orders.v1``). Shipping is internal
bookkeeping for now: it only closes the window in which an order may be cancelled, and no
other service reacts to it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime

from shopstream_service.domain import InternalEvent


class OrderShipped(InternalEvent):
    type_name: ClassVar[str] = "shopstream.orders.internal.OrderShipped"

    order_id: str
    shipped_by: str
    occurred_at: AwareDatetime


INTERNAL_EVENTS: tuple[type[InternalEvent], ...] = (OrderShipped,)
