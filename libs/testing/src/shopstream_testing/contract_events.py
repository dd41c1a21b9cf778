"""Realistic contract events for backbone tests and the demo, made from the golden payloads.

Backbone tests move real contract events (validated by the real registry on the way in), so a
test cannot pass on payloads the contract would reject.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson

from shopstream_contracts import REGISTRY
from shopstream_eventstore import EventMetadata, NewEvent
from shopstream_infra import repo_root

ORDER_LIFECYCLE = ("shopstream.orders.OrderPlaced", "shopstream.orders.OrderConfirmed")
BRANDS = ("brd_glow", "brd_lumen", "brd_terra", "brd_vela")


@cache
def golden(event_type: str, version: int = 1) -> dict[str, Any]:
    root = repo_root()
    if root is None:
        raise RuntimeError("the golden payloads live in the repository: run from a checkout")
    data: dict[str, Any] = orjson.loads(
        (root / "contracts" / "golden" / event_type / f"v{version}.json").read_bytes()
    )
    return data


def contract_event(
    event_type: str,
    key: str,
    occurred_at: datetime,
    correlation_id: str | None = None,
    **overrides: Any,
) -> NewEvent:
    """The golden payload of ``event_type`` re-keyed to aggregate ``key`` (top-level fields
    replaced by ``overrides``), checked strictly."""
    topic = REGISTRY.topic(event_type)
    data = {**golden(event_type), **overrides, topic.key: key, "occurred_at": occurred_at.isoformat()}
    REGISTRY.validate_for_publish(event_type, 1, data)
    return NewEvent(
        event_id=uuid.uuid4(),
        type=event_type,
        data=data,
        metadata=EventMetadata(occurred_at=occurred_at, correlation_id=correlation_id or key),
    )


def order_events(count: int, keys: int, start: datetime | None = None) -> Iterator[tuple[str, NewEvent]]:
    """``count`` order events spread round-robin over ``keys`` orders: (stream id, event)."""
    moment = start or datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    for n in range(count):
        order = n % keys
        key = f"ord_{order:05d}"
        event_type = ORDER_LIFECYCLE[(n // keys) % len(ORDER_LIFECYCLE)]
        line = golden(event_type)["line"]
        brand = BRANDS[order % len(BRANDS)]
        quantity = 1 + order % 3
        unit = line["unit_price"]
        total = {"amount": unit["amount"] * quantity, "currency": unit["currency"]}
        sold = {**line, "brand_id": brand, "quantity": quantity, "line_total": total}
        attribution = {**golden(event_type)["attribution"], "brand_id": brand}
        at = moment + timedelta(milliseconds=n)
        event = contract_event(event_type, key, at, line=sold, attribution=attribution, total=total)
        yield f"order-{key}", event
