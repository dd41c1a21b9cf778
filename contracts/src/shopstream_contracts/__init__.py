"""Shopstream's public event contract: versioned models, the registry and its upcasters.

Producers build a model (or call ``REGISTRY.validate_for_publish``): unknown fields are errors.
Consumers call ``REGISTRY.decode(type, version, data)``: unknown fields are ignored and older
versions are upcast to the latest.
"""

from shopstream_contracts.base import Event, EventContract, Money, Topic
from shopstream_contracts.catalogue import REGISTRY
from shopstream_contracts.errors import (
    ContractError,
    InvalidEventData,
    UnknownEventType,
    UnknownEventVersion,
    UpcastFailed,
)
from shopstream_contracts.registry import Registry, Upcaster
from shopstream_contracts.topics import DEADLETTER_HEADERS, DEADLETTER_TOPIC

__all__ = [
    "DEADLETTER_HEADERS",
    "DEADLETTER_TOPIC",
    "REGISTRY",
    "ContractError",
    "Event",
    "EventContract",
    "InvalidEventData",
    "Money",
    "Registry",
    "Topic",
    "UnknownEventType",
    "UnknownEventVersion",
    "UpcastFailed",
    "Upcaster",
]
