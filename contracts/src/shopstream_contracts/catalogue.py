"""The public catalogue: every event model of every service and version, and their upcasters.

A new version of an event is added here together with its upcaster from the previous
version (``REGISTRY.register_upcaster(type, N, fn)``), never instead of the old model: old
versions stay registered so that their payloads, in Kafka and in every event store, keep
decoding.
"""

from __future__ import annotations

from shopstream_contracts.catalog import v1 as catalog_v1
from shopstream_contracts.chat import v1 as chat_v1
from shopstream_contracts.commission import v1 as commission_v1
from shopstream_contracts.live import v1 as live_v1
from shopstream_contracts.orders import v1 as orders_v1
from shopstream_contracts.registry import Registry

SERVICE_MODULES = (live_v1, chat_v1, catalog_v1, orders_v1, commission_v1)


def build_registry() -> Registry:
    registry = Registry()
    for module in SERVICE_MODULES:
        registry.register(*module.EVENTS)
    registry.verify()
    return registry


REGISTRY = build_registry()
