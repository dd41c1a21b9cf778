"""The sale saga's return leg: catalog's answer to an OrderPlaced ⇒ confirm or reject the order.

The commands' ids derive from the causing StockReserved / StockReservationRejected event (the
policy runner does that), so a replayed answer re-issues the same command and changes nothing.
An order is confirmed or rejected at the moment catalog answered (the answer's ``occurred_at``),
which also keeps a re-issued command identical to the first.
"""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts import REGISTRY
from shopstream_contracts.catalog.v1 import StockReservationRejected, StockReserved
from shopstream_eventstore import RecordedEvent

from .commands import ConfirmOrder, RejectOrder

_ANSWERS = frozenset({StockReserved.contract.type, StockReservationRejected.contract.type})


class OrderSaga:
    name = "order-saga"

    def react(self, event: RecordedEvent) -> Sequence[ConfirmOrder | RejectOrder]:
        if event.type not in _ANSWERS:
            return []
        match REGISTRY.decode(event.type, event.data_version, event.data):
            case StockReserved() as reserved:
                return [ConfirmOrder(reserved.order_id, reserved.reservation_id, reserved.occurred_at)]
            case StockReservationRejected() as rejected:
                return [
                    RejectOrder(rejected.order_id, rejected.reason, rejected.detail, rejected.occurred_at)
                ]
        return []
