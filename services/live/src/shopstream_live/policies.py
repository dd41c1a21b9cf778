"""Policies: events in the live service's store ⇒ commands."""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_contracts import REGISTRY
from shopstream_contracts.catalog.v1 import StockReserved
from shopstream_eventstore import RecordedEvent

from .commands import DealSoldOut


class SoldOutDeals:
    """The catalog reserved a flash deal's last unit (``deal_units_left == 0``) ⇒ the deal ends
    as sold out."""

    name = "live.sold-out-deals"

    def react(self, event: RecordedEvent) -> Sequence[DealSoldOut]:
        if event.type != StockReserved.contract.type:
            return []
        reserved = REGISTRY.decode(event.type, event.data_version, event.data)
        assert isinstance(reserved, StockReserved)
        if reserved.deal_id is None or reserved.deal_units_left != 0:
            return []
        return [DealSoldOut(reserved.deal_id)]
