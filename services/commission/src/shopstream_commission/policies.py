"""Order events (received through the inbox) ⇒ commission commands.

One policy handles the three order events so that, per order, the accrual is complete before
a cancellation or refund of the same order is looked at: the policy runner processes the
store in order, and the inbox stores an order's events in the order the orders service
published them (one Kafka key per order).
"""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts import REGISTRY
from shopstream_contracts.orders.v1 import OrderCancelled, OrderConfirmed, OrderRefunded
from shopstream_eventstore import RecordedEvent

from .commands import AccrueOrderCommission, OrderPolicyCommand, ReverseOrderCommission

_CONFIRMED = OrderConfirmed.contract.type
_CANCELLED = OrderCancelled.contract.type
_REFUNDED = OrderRefunded.contract.type


class OrderCommissionPolicy:
    name = "commission-orders"

    def react(self, event: RecordedEvent) -> Sequence[OrderPolicyCommand]:
        if event.type not in (_CONFIRMED, _CANCELLED, _REFUNDED):
            return []
        decoded = REGISTRY.decode(event.type, event.data_version, event.data)
        if isinstance(decoded, OrderConfirmed):
            attribution = decoded.attribution
            # Web orders earn no commission; only a sale attributed to a live does.
            if attribution.live_id is None:
                return []
            return [
                AccrueOrderCommission(
                    order_id=decoded.order_id,
                    live_id=attribution.live_id,
                    brand_id=attribution.brand_id,
                    agreement_id=attribution.agreement_id,
                    host_ids=tuple(attribution.host_ids),
                    base=decoded.total,
                    sold_at=decoded.occurred_at,
                )
            ]
        if isinstance(decoded, OrderCancelled):
            return [ReverseOrderCommission(order_id=decoded.order_id, reason="order_cancelled")]
        if isinstance(decoded, OrderRefunded):
            return [
                ReverseOrderCommission(
                    order_id=decoded.order_id,
                    reason="order_refunded",
                    refund_id=decoded.refund_id,
                    total_refunded=decoded.total_refunded,
                    order_total=decoded.order_total,
                    fully_refunded=decoded.fully_refunded,
                )
            ]
        return []
