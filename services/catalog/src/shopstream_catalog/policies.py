"""The stock policy: events ⇒ commands on the stock stream of one SKU.

- our ProductCreated ⇒ RegisterSku for each of its SKUs (the stock stream learns its product);
- orders' OrderPlaced ⇒ ReserveStock (with the flash deal whose price it was placed at);
- orders' OrderCancelled ⇒ release every unit still reserved; OrderRefunded with units ⇒ release
  those units (a money-only refund releases nothing);
- live's FlashDealStarted / FlashDealEnded ⇒ OpenDeal / CloseDeal.

One policy for all of them on purpose: it handles events in the order the local store holds
them, so a SKU's registration precedes its first order and a deal event and an order are never
decided concurrently by two runners. Command ids derive from the causing event id (the runner
does that) and the reservation id from the order id, so a replay re-issues identical commands,
which the stock decider answers with no event.

A policy is pure and cannot read the clock: ``at`` is the cause's time here, and the command
handler stamps the moment it actually decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shopstream_contracts import REGISTRY, Event
from shopstream_contracts.catalog.v1 import ProductCreated
from shopstream_contracts.live.v1 import FlashDealEnded, FlashDealStarted
from shopstream_contracts.orders.v1 import OrderCancelled, OrderPlaced, OrderRefunded
from shopstream_eventstore import RecordedEvent

from .commands import CloseDeal, OpenDeal, RegisterSku, ReleaseStock, ReserveStock, StockCommand

STOCK_POLICY = "stock"

# Fixed forever: a reservation's id must stay the same for its order across replays.
RESERVATION_NAMESPACE = uuid.UUID("9a7c51e4-2f0b-5d6a-8e3c-41b7d2f0a9c5")

_CAUSES = frozenset(
    model.contract.type
    for model in (
        ProductCreated,
        OrderPlaced,
        OrderCancelled,
        OrderRefunded,
        FlashDealStarted,
        FlashDealEnded,
    )
)


def reservation_id_for(order_id: str) -> str:
    return str(uuid.uuid5(RESERVATION_NAMESPACE, order_id))


def _commands(event: Event) -> Sequence[StockCommand]:
    match event:
        case ProductCreated():
            return [
                RegisterSku(s.sku_id, event.product_id, event.brand_id, event.occurred_at) for s in event.skus
            ]
        case OrderPlaced(attribution=attribution, line=line):
            deal_id = attribution.flash_deal_id if attribution.price_source == "flash_deal" else None
            return [
                ReserveStock(
                    sku_id=line.sku_id,
                    order_id=event.order_id,
                    buyer_id=event.buyer_id,
                    quantity=line.quantity,
                    deal_id=deal_id,
                    reservation_id=reservation_id_for(event.order_id),
                    placed_at=event.occurred_at,
                    at=event.occurred_at,
                )
            ]
        case OrderCancelled():
            return [
                ReleaseStock(event.sku_id, event.order_id, "order_cancelled", None, None, event.occurred_at)
            ]
        case OrderRefunded() if event.quantity > 0:
            return [
                ReleaseStock(
                    event.sku_id,
                    event.order_id,
                    "order_refunded",
                    event.quantity,
                    event.refund_id,
                    event.occurred_at,
                )
            ]
        case FlashDealStarted():
            return [
                OpenDeal(
                    sku_id=event.sku_id,
                    deal_id=event.deal_id,
                    live_id=event.live_id,
                    units=event.units,
                    per_buyer_cap=event.per_buyer_cap,
                    started_at=event.occurred_at,
                    ends_at=event.ends_at,
                    at=event.occurred_at,
                )
            ]
        case FlashDealEnded():
            return [
                CloseDeal(event.sku_id, event.deal_id, event.reason, event.occurred_at, event.occurred_at)
            ]
    return []


class StockPolicy:
    name = STOCK_POLICY

    def react(self, event: RecordedEvent) -> Sequence[StockCommand]:
        if event.type not in _CAUSES:
            return []
        return _commands(REGISTRY.decode(event.type, event.data_version, event.data))
