"""Version 1 of the catalog service's public events.

Topics: ``shopstream.catalog.brand`` (key ``brand_id``), ``shopstream.catalog.product``
(key ``product_id``: products, SKUs, list prices) and ``shopstream.catalog.stock`` (key
``sku_id``: every stock movement of one SKU, in order, including the reservations that answer
``OrderPlaced``).

Stock figures: ``on_hand`` is what the warehouse holds; ``available`` is what can still be
reserved (on hand minus reservations); units allocated to an active flash deal are sold only
through the deal.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictInt, StringConstraints

from shopstream_contracts.base import (
    ContractModel,
    Count,
    CurrencyCode,
    Event,
    EventContract,
    Id,
    MarketCode,
    Money,
    OccurredAt,
    PositiveCount,
    Text,
    Title,
    Topic,
)
from shopstream_contracts.topics import CATALOG_BRAND, CATALOG_PRODUCT, CATALOG_STOCK

_SKU_ID = "The SKU (the Kafka key)."

OptionName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
OptionValue = Annotated[str, StringConstraints(min_length=1, max_length=80)]

ReservationRejectionReason = Literal[
    "sold_out",
    "insufficient_stock",
    "deal_cap_reached",
    "per_buyer_cap_reached",
    "deal_not_active",
    "unknown_sku",
]
"""sold_out: nothing left; insufficient_stock: fewer units left than ordered; deal_cap_reached:
the flash deal's units are gone; per_buyer_cap_reached: the buyer already has the deal's
per-buyer cap; deal_not_active: the order references a flash deal that has not started or has
ended; unknown_sku: the catalog has no such SKU."""


def _contract(name: str, topic: Topic) -> EventContract:
    return EventContract(type=f"shopstream.catalog.{name}", version=1, topic=topic)


class Sku(ContractModel):
    """A sellable variant of a product."""

    sku_id: Id = Field(description="The SKU.")
    options: dict[OptionName, OptionValue] = Field(
        default_factory=dict,
        description='What distinguishes this variant, e.g. {"size": "M", "color": "black"}.',
    )
    barcode: Annotated[str, StringConstraints(pattern=r"^[0-9]{8,14}$")] | None = Field(
        default=None, description="GTIN/EAN barcode, if any."
    )


class BrandOnboarded(Event):
    """A brand joined the platform and may list products and sell on lives."""

    contract: ClassVar[EventContract] = _contract("BrandOnboarded", CATALOG_BRAND)

    brand_id: Id = Field(description="The brand (the Kafka key).")
    name: Title = Field(description="Name shown to buyers.")
    country: MarketCode = Field(description="Country of the brand's seat (ISO-3166-1 alpha-2).")
    default_currency: CurrencyCode = Field(description="Currency the brand reports in.")
    onboarded_by: Id = Field(description="User who onboarded the brand.")
    occurred_at: OccurredAt


class ProductCreated(Event):
    """A brand listed a new product with its SKUs (prices and stock come separately)."""

    contract: ClassVar[EventContract] = _contract("ProductCreated", CATALOG_PRODUCT)

    product_id: Id = Field(description="The product (the Kafka key).")
    brand_id: Id = Field(description="The brand that sells it.")
    title: Title = Field(description="Name shown to buyers.")
    description: Text | None = Field(default=None, description="Longer text shown to buyers, if any.")
    skus: list[Sku] = Field(min_length=1, description="Its variants, distinct by sku_id.")
    created_by: Id = Field(description="User who created it.")
    occurred_at: OccurredAt


class ListPriceSet(Event):
    """The regular (non-live) price of a SKU in a market was set or changed."""

    contract: ClassVar[EventContract] = _contract("ListPriceSet", CATALOG_PRODUCT)

    product_id: Id = Field(description="The product (the Kafka key).")
    sku_id: Id = Field(description="The SKU priced.")
    brand_id: Id = Field(description="The brand that sells it.")
    market: MarketCode = Field(description="Market the price applies to (ISO-3166-1 alpha-2).")
    price: Money = Field(description="The list price per unit, taxes included.")
    previous_price: Money | None = Field(
        default=None, description="The list price it replaces in this market; null if it is the first."
    )
    set_by: Id = Field(description="User who set the price.")
    occurred_at: OccurredAt


class StockReceived(Event):
    """Units of a SKU arrived in stock."""

    contract: ClassVar[EventContract] = _contract("StockReceived", CATALOG_STOCK)

    sku_id: Id = Field(description=_SKU_ID)
    product_id: Id = Field(description="The SKU's product.")
    brand_id: Id = Field(description="The brand that sells it.")
    quantity: PositiveCount = Field(description="Units received.")
    on_hand_after: Count = Field(description="Units on hand after the receipt.")
    available_after: Count = Field(description="Units available to reserve after the receipt.")
    reference: Title | None = Field(default=None, description="Shipment or purchase-order reference, if any.")
    received_by: Id = Field(description="User who recorded the receipt.")
    occurred_at: OccurredAt


class StockAdjusted(Event):
    """Stock on hand was corrected (inventory count, damage, loss, found units)."""

    contract: ClassVar[EventContract] = _contract("StockAdjusted", CATALOG_STOCK)

    sku_id: Id = Field(description=_SKU_ID)
    product_id: Id = Field(description="The SKU's product.")
    brand_id: Id = Field(description="The brand that sells it.")
    delta: StrictInt = Field(description="Units added (positive) or removed (negative); never 0.")
    reason: Literal["count", "damaged", "lost", "found", "correction"] = Field(
        description="count: physical inventory count; damaged/lost: units written off; "
        "found: units found again; correction: fixing an earlier mistake."
    )
    note: Text | None = Field(default=None, description="Free text from the user, if any.")
    on_hand_after: Count = Field(description="Units on hand after the adjustment.")
    available_after: Count = Field(description="Units available to reserve after the adjustment.")
    adjusted_by: Id = Field(description="User who adjusted the stock.")
    occurred_at: OccurredAt


class StockReserved(Event):
    """Units were reserved for an order (the answer to its OrderPlaced), exactly once per order."""

    contract: ClassVar[EventContract] = _contract("StockReserved", CATALOG_STOCK)

    sku_id: Id = Field(description=_SKU_ID)
    product_id: Id = Field(description="The SKU's product.")
    brand_id: Id = Field(description="The brand that sells it.")
    reservation_id: Id = Field(description="The reservation; releases reference it.")
    order_id: Id = Field(description="The order the units are reserved for.")
    buyer_id: Id = Field(description="The order's buyer.")
    quantity: PositiveCount = Field(description="Units reserved.")
    deal_id: Id | None = Field(default=None, description="The flash deal the units came from, if any.")
    deal_units_left: Count | None = Field(
        default=None, description="Units of that flash deal still unreserved after this one."
    )
    available_after: Count = Field(description="Units available to reserve after this reservation.")
    occurred_at: OccurredAt


class StockReservationRejected(Event):
    """An order could not get its units; the order will be rejected with this reason."""

    contract: ClassVar[EventContract] = _contract("StockReservationRejected", CATALOG_STOCK)

    sku_id: Id = Field(description=_SKU_ID)
    order_id: Id = Field(description="The order that was refused.")
    buyer_id: Id = Field(description="The order's buyer.")
    quantity: PositiveCount = Field(description="Units the order asked for.")
    deal_id: Id | None = Field(default=None, description="The flash deal the order referenced, if any.")
    reason: ReservationRejectionReason = Field(
        description="sold_out | insufficient_stock | deal_cap_reached | per_buyer_cap_reached | "
        "deal_not_active | unknown_sku."
    )
    detail: Text | None = Field(default=None, description="Human-readable detail, if any.")
    occurred_at: OccurredAt


class StockReleased(Event):
    """Reserved units went back to available stock because their order was cancelled or refunded."""

    contract: ClassVar[EventContract] = _contract("StockReleased", CATALOG_STOCK)

    sku_id: Id = Field(description=_SKU_ID)
    product_id: Id = Field(description="The SKU's product.")
    brand_id: Id = Field(description="The brand that sells it.")
    reservation_id: Id = Field(description="The reservation the units came from.")
    order_id: Id = Field(description="The order that gave them back.")
    quantity: PositiveCount = Field(description="Units released.")
    deal_id: Id | None = Field(
        default=None, description="The flash deal the units were reserved under, if any."
    )
    reason: Literal["order_cancelled", "order_refunded"] = Field(
        description="order_cancelled: the whole order was cancelled; order_refunded: units were "
        "returned with a (possibly partial) refund."
    )
    refund_id: Id | None = Field(default=None, description="The refund that returned them (order_refunded).")
    available_after: Count = Field(description="Units available to reserve after the release.")
    occurred_at: OccurredAt


EVENTS: tuple[type[Event], ...] = (
    BrandOnboarded,
    ProductCreated,
    ListPriceSet,
    StockReceived,
    StockAdjusted,
    StockReserved,
    StockReservationRejected,
    StockReleased,
)
