"""Every public Kafka topic, and the one dead-letter topic.

Topic names never carry a version: a new event version is published on the same topic, so
per-aggregate order survives a migration. The key of every message is the aggregate id named
by ``Topic.key``.
"""

from __future__ import annotations

from shopstream_contracts.base import Topic

LIVE_SESSION = Topic(
    service="live",
    aggregate="session",
    key="live_id",
    description="A live session's lifecycle and everything that happens on its timeline: "
    "pins, flash deals, payment terms, audience tallies.",
)
CHAT_ROOM = Topic(
    service="chat",
    aggregate="room",
    key="room_id",
    description="A live's chat room: messages, moderation, questions and answers.",
)
CATALOG_BRAND = Topic(
    service="catalog",
    aggregate="brand",
    key="brand_id",
    description="Brands selling on Shopstream.",
)
CATALOG_PRODUCT = Topic(
    service="catalog",
    aggregate="product",
    key="product_id",
    description="Products, their SKUs and list prices per market.",
)
CATALOG_STOCK = Topic(
    service="catalog",
    aggregate="stock",
    key="sku_id",
    description="Stock of one SKU: receipts, adjustments, reservations for orders and releases.",
)
ORDERS_ORDER = Topic(
    service="orders",
    aggregate="order",
    key="order_id",
    description="Orders: placed with a price snapshot and attribution, confirmed or rejected, "
    "cancelled, refunded.",
)
COMMISSION_AGREEMENT = Topic(
    service="commission",
    aggregate="agreement",
    key="agreement_id",
    description="Versioned commission agreements between a brand and an influencer.",
)
COMMISSION_ACCOUNT = Topic(
    service="commission",
    aggregate="account",
    key="influencer_id",
    description="An influencer's commission ledger (accrued, released, reversed) and statements, "
    "in ledger order.",
)

DEADLETTER_TOPIC = "shopstream.deadletter"
"""Where any Shopstream consumer puts a message it cannot decode or handle: one topic for the
whole platform, so operators watch a single place. The message keeps its original key, value
and headers, plus the ``DEADLETTER_HEADERS`` below; the ``dl_consumer`` header tells which
consumer group gave up on it."""

DEADLETTER_HEADERS: dict[str, str] = {
    "dl_reason": "Why the consumer could not handle the message (human-readable, precise).",
    "dl_consumer": "Consumer group that dead-lettered the message.",
    "dl_topic": "Topic the message was read from.",
    "dl_partition": "Partition it was read from (decimal).",
    "dl_offset": "Offset it was read from (decimal).",
    "dl_time": "When it was dead-lettered (RFC 3339, UTC).",
}
