"""The catalog's commands: pure data, everything a decider needs that is not in its stream.

Ids (brand, product, SKU, reservation), the time of the decision (``at``, from the injected
clock) and the acting user arrive inside the command, so every decider is a pure function of
(command, state). Commands issued by policies (reserve, release, open/close a deal) carry no
actor: they answer another service's event, not a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shopstream_contracts import Money


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, as far as the catalog's rules care: the token subject, roles and brands."""

    user_id: str
    roles: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def manages(self, brand_id: str) -> bool:
        """An admin, or staff (role ``brand``) of this very brand."""
        return self.is_admin or ("brand" in self.roles and brand_id in self.brands)


# --- brand ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnboardBrand:
    brand_id: str
    name: str
    country: str
    default_currency: str
    actor: Actor
    at: datetime


# --- product ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewPrice:
    market: str
    price: Money


@dataclass(frozen=True, slots=True)
class NewSku:
    sku_id: str
    options: Mapping[str, str] = field(default_factory=dict)
    barcode: str | None = None
    list_prices: tuple[NewPrice, ...] = ()


@dataclass(frozen=True, slots=True)
class CreateProduct:
    product_id: str
    brand_id: str
    brand_onboarded: bool
    """Whether the brand exists, looked up before deciding (it lives in another stream)."""
    title: str
    description: str | None
    skus: tuple[NewSku, ...]
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class SetListPrice:
    product_id: str
    sku_id: str
    market: str
    price: Money
    actor: Actor
    at: datetime


ProductCommand = CreateProduct | SetListPrice


# --- stock (one stream per SKU) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterSku:
    """Opens the SKU's stock stream for its product (issued for every SKU of a new product)."""

    sku_id: str
    product_id: str
    brand_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReceiveStock:
    sku_id: str
    quantity: int
    reference: str | None
    actor: Actor
    at: datetime


AdjustmentReason = Literal["count", "damaged", "lost", "found", "correction"]


@dataclass(frozen=True, slots=True)
class AdjustStock:
    sku_id: str
    delta: int
    reason: AdjustmentReason
    note: str | None
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class ReserveStock:
    """The answer to an OrderPlaced: reserve ``quantity`` units for the order, exactly once."""

    sku_id: str
    order_id: str
    buyer_id: str
    quantity: int
    deal_id: str | None
    """The flash deal whose price the order was placed at, if any."""
    reservation_id: str
    placed_at: datetime
    """When the order was placed (orders' clock): a deal order counts if placed while the deal ran."""
    at: datetime


ReleaseReason = Literal["order_cancelled", "order_refunded"]


@dataclass(frozen=True, slots=True)
class ReleaseStock:
    """Give back an order's units: all that remain on cancel, ``quantity`` on a refund."""

    sku_id: str
    order_id: str
    reason: ReleaseReason
    quantity: int | None
    """Units returned by the refund; None on cancellation (everything still reserved)."""
    refund_id: str | None
    at: datetime


DealEndReason = Literal["deadline", "sold_out", "cancelled", "live_ended"]


@dataclass(frozen=True, slots=True)
class OpenDeal:
    """A flash deal started on this SKU (learnt from live's FlashDealStarted)."""

    sku_id: str
    deal_id: str
    live_id: str
    units: int
    per_buyer_cap: int
    started_at: datetime
    ends_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseDeal:
    """A flash deal ended (learnt from live's FlashDealEnded)."""

    sku_id: str
    deal_id: str
    reason: DealEndReason
    ended_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class ExpireDeferredReservations:
    """Refuse the orders still waiting for a deal that was never announced to this SKU."""

    sku_id: str
    deferred_before: datetime
    at: datetime


StockCommand = (
    RegisterSku
    | ReceiveStock
    | AdjustStock
    | ReserveStock
    | ReleaseStock
    | OpenDeal
    | CloseDeal
    | ExpireDeferredReservations
)
