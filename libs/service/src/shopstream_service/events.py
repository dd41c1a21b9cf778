"""How a service's domain events are stored and read back.

Contract events are stored under their contract type and version and read back through the
contract registry (tolerant, upcast to the latest version), so an old stored event always
folds with today's code. Internal events are stored under their stable ``type_name``.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from shopstream_contracts import REGISTRY, Event, Registry, UnknownEventType
from shopstream_eventstore import EventMetadata, NewEvent, RecordedEvent

from .domain import DomainEvent, InternalEvent


class EventCatalog:
    def __init__(self, internal: Iterable[type[InternalEvent]] = (), registry: Registry = REGISTRY) -> None:
        self._registry = registry
        self._internal = {model.type_name: model for model in internal}

    def to_new(self, event: DomainEvent, event_id: UUID, metadata: EventMetadata) -> NewEvent:
        if isinstance(event, Event):
            contract = event.contract
            return NewEvent(event_id, contract.type, event.to_data(), metadata, contract.version)
        if type(event).type_name not in self._internal:
            raise TypeError(f"internal event {type(event).type_name} is not in this service's catalog")
        return NewEvent(event_id, type(event).type_name, event.to_data(), metadata, type(event).version)

    def decode(self, recorded: RecordedEvent) -> DomainEvent:
        internal = self._internal.get(recorded.type)
        if internal is not None:
            return internal.model_validate(recorded.data)
        return self._registry.decode(recorded.type, recorded.data_version, recorded.data)

    def knows(self, event_type: str) -> bool:
        if event_type in self._internal:
            return True
        try:
            self._registry.latest(event_type)
        except UnknownEventType:
            return False
        return True
