"""The default publishing rule: a stored event whose type is one of this service's public
contract events goes to its contract topic, keyed by the aggregate id its contract names.

Events of other services (received through the inbox) and internal-only event types are not
published: a relay publishes only its own service's public events.
"""

from __future__ import annotations

from shopstream_contracts.errors import UnknownEventType
from shopstream_contracts.registry import Registry
from shopstream_eventstore import RecordedEvent

from .cloudevents import CloudEvent
from .relay import Publication, ToPublic


def contract_publication(registry: Registry, service: str) -> ToPublic:
    def to_public(event: RecordedEvent) -> Publication | None:
        try:
            topic = registry.topic(event.type)
        except UnknownEventType:
            return None
        if topic.service != service:
            return None
        key = str(event.data[topic.key])
        meta = event.metadata
        return topic.name, CloudEvent(
            id=str(event.event_id),
            source=topic.source,
            type=event.type,
            time=meta.occurred_at,
            subject=key,
            data=dict(event.data),
            dataversion=event.data_version,
            correlationid=meta.correlation_id,
            causationid=meta.causation_id,
            key=key,
        )

    return to_public
