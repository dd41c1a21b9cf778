"""Version 1 of the orders service's public events (topic ``shopstream.orders.order``).

An order is for one SKU. It carries a price snapshot and its attribution, stamped at the moment
of sale: the live, the brand, the hosts and where the unit price came from. Consumers (commission
in particular) never have to guess them later.

Saga: OrderPlaced ⇒ catalog answers StockReserved | StockReservationRejected ⇒ OrderConfirmed |
OrderRejected. A confirmed order may later be cancelled (before shipping) or refunded, in full or
in part.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from shopstream_contracts.base import (
    ContractModel,
    Count,
    Event,
    EventContract,
    Id,
    LiveOffsetMs,
    MarketCode,
    Money,
    OccurredAt,
    PositiveCount,
    Text,
)
from shopstream_contracts.topics import ORDERS_ORDER

_ORDER_ID = "The order (the Kafka key)."

PriceSource = Literal["list", "live", "flash_deal"]
"""list: the SKU's list price in the order's market; live: a live-only price; flash_deal: the
price of an active flash deal."""

Channel = Literal["live", "replay", "web"]
"""live: bought while the live was on air; replay: from the recording of a live; web: outside
any live."""


def _contract(name: str) -> EventContract:
    return EventContract(type=f"shopstream.orders.{name}", version=1, topic=ORDERS_ORDER)


class OrderLine(ContractModel):
    """What was bought and the price snapshot taken when the order was placed."""

    product_id: Id = Field(description="The product.")
    sku_id: Id = Field(description="The SKU bought.")
    brand_id: Id = Field(description="The brand that sells it.")
    quantity: PositiveCount = Field(description="Units bought.")
    unit_price: Money = Field(description="Price paid per unit, per price_source of the attribution.")
    list_price: Money = Field(description="The SKU's list price in the order's market at that moment.")
    line_total: Money = Field(description="unit_price × quantity.")


class Attribution(ContractModel):
    """Who and what made the sale, stamped at the moment of sale; commission is computed from it."""

    channel: Channel = Field(description="live | replay | web.")
    live_id: Id | None = Field(default=None, description="The live the order came from; null for web.")
    brand_id: Id = Field(description="The brand credited with the sale.")
    agreement_id: Id | None = Field(
        default=None,
        description="The commission agreement the live sells this brand under; null when no live.",
    )
    host_ids: list[Id] = Field(
        default_factory=list,
        description="The live's hosts credited with the sale, lead host first; empty when no live.",
    )
    price_source: PriceSource = Field(description="list | live | flash_deal.")
    flash_deal_id: Id | None = Field(
        default=None, description="The flash deal whose price applied (price_source flash_deal)."
    )
    live_offset_ms: LiveOffsetMs | None = Field(
        default=None,
        description="Milliseconds since the live started when the order was placed; null unless "
        "channel is live.",
    )


class PaymentPlan(ContractModel):
    """How the buyer pays."""

    method: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        description="Payment method, lower-case: card, pix, boleto, wallet, bank_transfer, …"
    )
    installments: StrictInt = Field(ge=1, le=48, description="Number of installments; 1 means paid at once.")
    interest_free: StrictBool = Field(description="Whether the installments carry no interest.")
    terms_id: Id | None = Field(
        default=None, description="The live's payment terms (PaymentTermsOffered) used, if any."
    )


class OrderPlaced(Event):
    """A buyer placed an order; stock is not reserved yet."""

    contract: ClassVar[EventContract] = _contract("OrderPlaced")

    order_id: Id = Field(description=_ORDER_ID)
    buyer_id: Id = Field(description="The buyer (token subject).")
    market: MarketCode = Field(description="Market the order is priced in (ISO-3166-1 alpha-2).")
    line: OrderLine = Field(description="What is bought, with its price snapshot.")
    attribution: Attribution = Field(description="Live, brand, hosts and price source of the sale.")
    payment_plan: PaymentPlan = Field(description="How the buyer pays.")
    total: Money = Field(description="Amount the buyer pays for the order.")
    occurred_at: OccurredAt


class OrderConfirmed(Event):
    """Stock was reserved: the sale is firm. Self-contained, so a consumer needs no other event."""

    contract: ClassVar[EventContract] = _contract("OrderConfirmed")

    order_id: Id = Field(description=_ORDER_ID)
    buyer_id: Id = Field(description="The buyer.")
    reservation_id: Id = Field(description="The catalog reservation holding the units.")
    market: MarketCode = Field(description="Market the order is priced in.")
    line: OrderLine = Field(description="What was bought, with its price snapshot.")
    attribution: Attribution = Field(description="Live, brand, hosts and price source of the sale.")
    total: Money = Field(description="Amount the buyer pays for the order.")
    occurred_at: OccurredAt


class OrderRejected(Event):
    """The order could not be fulfilled; the buyer is not charged."""

    contract: ClassVar[EventContract] = _contract("OrderRejected")

    order_id: Id = Field(description=_ORDER_ID)
    buyer_id: Id = Field(description="The buyer.")
    reason: Literal[
        "sold_out",
        "insufficient_stock",
        "deal_cap_reached",
        "per_buyer_cap_reached",
        "deal_not_active",
        "unknown_sku",
        "payment_declined",
    ] = Field(
        description="The catalog's reservation rejection reason (see StockReservationRejected), "
        "or payment_declined."
    )
    detail: Text | None = Field(default=None, description="Human-readable detail, if any.")
    occurred_at: OccurredAt


class OrderCancelled(Event):
    """An order was cancelled before shipping; the units reserved for it go back to stock."""

    contract: ClassVar[EventContract] = _contract("OrderCancelled")

    order_id: Id = Field(description=_ORDER_ID)
    buyer_id: Id = Field(description="The buyer.")
    brand_id: Id = Field(description="The brand that sold it.")
    sku_id: Id = Field(description="The SKU whose units go back to stock.")
    quantity: PositiveCount = Field(description="Units of the order (all of them are cancelled).")
    refund: Money = Field(description="Amount returned to the buyer by the cancellation.")
    cancelled_by: Id = Field(description="User who cancelled: the buyer, the brand or an admin.")
    reason: Text | None = Field(default=None, description="Why, as given by the user, if any.")
    occurred_at: OccurredAt


class OrderRefunded(Event):
    """Money (and possibly units) went back to the buyer; partial refunds are allowed."""

    contract: ClassVar[EventContract] = _contract("OrderRefunded")

    order_id: Id = Field(description=_ORDER_ID)
    buyer_id: Id = Field(description="The buyer.")
    brand_id: Id = Field(description="The brand that sold it.")
    refund_id: Id = Field(description="This refund; an order may have several.")
    sku_id: Id = Field(description="The order's SKU.")
    amount: Money = Field(description="Amount returned to the buyer by this refund (positive).")
    quantity: Count = Field(description="Units returned to stock by this refund; 0 for a money-only refund.")
    total_refunded: Money = Field(description="Sum of all refunds of the order, this one included.")
    order_total: Money = Field(description="The order's total, so the refunded share is computable.")
    fully_refunded: StrictBool = Field(description="Whether total_refunded now equals order_total.")
    refunded_by: Id = Field(description="User who refunded: the brand or an admin.")
    reason: Text | None = Field(default=None, description="Why, as given by the user, if any.")
    occurred_at: OccurredAt


EVENTS: tuple[type[Event], ...] = (
    OrderPlaced,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    OrderRefunded,
)
