"""Version 1 of the live service's public events (topic ``shopstream.live.session``).

A live session is scheduled with its hosts (influencers), the brands selling on it and their
showcase, then started, ended or cancelled. While it runs, hosts pin products, run flash deals
and offer payment terms, and the audience is tallied per time window.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt

from shopstream_contracts.base import (
    ContractModel,
    Count,
    Event,
    EventContract,
    Id,
    LiveOffsetMs,
    Money,
    OccurredAt,
    PositiveCount,
    Text,
    Title,
    UtcDateTime,
)
from shopstream_contracts.topics import LIVE_SESSION

_LIVE_ID = "The live session (the Kafka key)."


def _contract(name: str) -> EventContract:
    return EventContract(type=f"shopstream.live.{name}", version=1, topic=LIVE_SESSION)


class LiveBrand(ContractModel):
    """A brand selling on a live, with the commission agreement that pays the live's hosts."""

    brand_id: Id = Field(description="The brand (catalog's brand id).")
    agreement_id: Id = Field(
        description="The brand–influencer commission agreement this live sells under; the "
        "agreement version in force at the moment of each sale applies."
    )


class ShowcaseItem(ContractModel):
    """A product shown on a live."""

    product_id: Id = Field(description="The product (catalog's product id).")
    brand_id: Id = Field(description="The brand selling it; one of the live's brands.")
    sku_ids: list[Id] = Field(
        default_factory=list,
        description="The SKUs of the product offered on the live; empty means all of them.",
    )


class LiveScheduled(Event):
    """A live session was scheduled: who hosts it, which brands sell on it, what is shown."""

    contract: ClassVar[EventContract] = _contract("LiveScheduled")

    live_id: Id = Field(description=_LIVE_ID)
    title: Title = Field(description="Title shown to viewers.")
    description: Text | None = Field(default=None, description="Longer text shown to viewers, if any.")
    scheduled_start_at: UtcDateTime = Field(description="When the live is planned to start (UTC).")
    host_ids: list[Id] = Field(
        min_length=1,
        description="The influencers hosting the live, distinct; the first is the lead host.",
    )
    brands: list[LiveBrand] = Field(min_length=1, description="The brands selling on the live, distinct.")
    showcase: list[ShowcaseItem] = Field(
        default_factory=list, description="Products that may be pinned and sold on the live."
    )
    scheduled_by: Id = Field(description="User who scheduled the live.")
    occurred_at: OccurredAt


class LiveRescheduled(Event):
    """A scheduled live was moved to another start time (only before it starts)."""

    contract: ClassVar[EventContract] = _contract("LiveRescheduled")

    live_id: Id = Field(description=_LIVE_ID)
    scheduled_start_at: UtcDateTime = Field(description="The new planned start (UTC).")
    previous_scheduled_start_at: UtcDateTime = Field(description="The planned start it replaces (UTC).")
    rescheduled_by: Id = Field(description="User who rescheduled the live.")
    occurred_at: OccurredAt


class LiveStarted(Event):
    """The live went on air. Its ``occurred_at`` is time zero of the live's timeline:
    every later event of the live carries ``live_offset_ms`` relative to it."""

    contract: ClassVar[EventContract] = _contract("LiveStarted")

    live_id: Id = Field(description=_LIVE_ID)
    started_by: Id = Field(description="User who started the live.")
    occurred_at: OccurredAt


class LiveEnded(Event):
    """The live went off air. Nothing can be pinned or dealt on it any more."""

    contract: ClassVar[EventContract] = _contract("LiveEnded")

    live_id: Id = Field(description=_LIVE_ID)
    ended_by: Id = Field(description="User who ended the live.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class LiveCancelled(Event):
    """A scheduled live was cancelled before it started."""

    contract: ClassVar[EventContract] = _contract("LiveCancelled")

    live_id: Id = Field(description=_LIVE_ID)
    cancelled_by: Id = Field(description="User who cancelled the live.")
    reason: Text | None = Field(default=None, description="Why, as given by the user, if any.")
    occurred_at: OccurredAt


class ProductPinned(Event):
    """A showcase product was pinned on screen during the live."""

    contract: ClassVar[EventContract] = _contract("ProductPinned")

    live_id: Id = Field(description=_LIVE_ID)
    product_id: Id = Field(description="The pinned product; part of the live's showcase.")
    brand_id: Id = Field(description="The brand selling it.")
    sku_id: Id | None = Field(default=None, description="The SKU highlighted, if one was chosen.")
    pinned_by: Id = Field(description="User who pinned it.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class ProductUnpinned(Event):
    """A pinned product was taken off screen."""

    contract: ClassVar[EventContract] = _contract("ProductUnpinned")

    live_id: Id = Field(description=_LIVE_ID)
    product_id: Id = Field(description="The product that is no longer pinned.")
    unpinned_by: Id = Field(description="User who unpinned it.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class FlashDealStarted(Event):
    """A live-only price on one SKU, for a limited number of units and a limited time."""

    contract: ClassVar[EventContract] = _contract("FlashDealStarted")

    live_id: Id = Field(description=_LIVE_ID)
    deal_id: Id = Field(description="The flash deal; orders at the deal price reference it.")
    brand_id: Id = Field(description="The brand selling the SKU.")
    product_id: Id = Field(description="The product of the SKU.")
    sku_id: Id = Field(description="The SKU on deal.")
    deal_price: Money = Field(description="Unit price while the deal is active.")
    units: PositiveCount = Field(description="Total units sold at the deal price, across all buyers.")
    per_buyer_cap: PositiveCount = Field(description="Maximum units one buyer may buy at the deal price.")
    duration_ms: PositiveCount = Field(description="How long the deal lasts unless sold out first.")
    ends_at: UtcDateTime = Field(description="Deadline (UTC): occurred_at + duration_ms.")
    started_by: Id = Field(description="User who started the deal.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class FlashDealEnded(Event):
    """A flash deal stopped: at its deadline, sold out, cancelled, or because the live ended."""

    contract: ClassVar[EventContract] = _contract("FlashDealEnded")

    live_id: Id = Field(description=_LIVE_ID)
    deal_id: Id = Field(description="The flash deal that ended.")
    sku_id: Id = Field(description="The SKU that was on deal.")
    reason: Literal["deadline", "sold_out", "cancelled", "live_ended"] = Field(
        description="deadline: its time ran out; sold_out: all units were reserved; "
        "cancelled: a host stopped it; live_ended: the live ended while it ran."
    )
    ended_by: Id | None = Field(default=None, description="User who cancelled it; null otherwise.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class PaymentTermsOffered(Event):
    """Payment conditions offered during the live, e.g. up to 6 interest-free installments."""

    contract: ClassVar[EventContract] = _contract("PaymentTermsOffered")

    live_id: Id = Field(description=_LIVE_ID)
    terms_id: Id = Field(description="These terms; an order's payment plan references them.")
    brand_id: Id | None = Field(
        default=None, description="The brand whose products the terms apply to; null means every brand."
    )
    max_installments: StrictInt = Field(ge=1, le=48, description="Most installments a buyer may choose.")
    interest_free: StrictBool = Field(description="Whether those installments carry no interest.")
    min_installment: Money | None = Field(
        default=None, description="Smallest allowed installment amount, if there is one."
    )
    valid_until: UtcDateTime | None = Field(
        default=None, description="When the offer lapses (UTC); null means at the end of the live."
    )
    offered_by: Id = Field(description="User who offered the terms.")
    live_offset_ms: LiveOffsetMs
    occurred_at: OccurredAt


class AudienceSampled(Event):
    """Audience tally of one time window of the live (one event per window, not per viewer)."""

    contract: ClassVar[EventContract] = _contract("AudienceSampled")

    live_id: Id = Field(description=_LIVE_ID)
    window_start: UtcDateTime = Field(description="Start of the window, inclusive (UTC).")
    window_end: UtcDateTime = Field(description="End of the window, exclusive (UTC).")
    concurrent_viewers: Count = Field(description="Viewers connected at the end of the window.")
    peak_concurrent_viewers: Count = Field(description="Most viewers connected at once within the window.")
    joins: Count = Field(description="Viewer connections opened within the window.")
    likes: Count = Field(description="Likes received within the window.")
    live_offset_ms: LiveOffsetMs = Field(description="Offset of window_end since the live started.")
    occurred_at: OccurredAt


EVENTS: tuple[type[Event], ...] = (
    LiveScheduled,
    LiveRescheduled,
    LiveStarted,
    LiveEnded,
    LiveCancelled,
    ProductPinned,
    ProductUnpinned,
    FlashDealStarted,
    FlashDealEnded,
    PaymentTermsOffered,
    AudienceSampled,
)
