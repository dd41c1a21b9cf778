"""A stored event as the CloudEvent its owner publishes (or published): same id, source, type,
time, subject, key and data as the relay's, because it is built by the same rule
(``contract_publication``). Internal events have no contract: they get the owning service's
source and their stream id as subject, and are never published.

``row`` gives the same attributes as a flat tuple from a ``StoredEvent`` without building a
``CloudEvent`` or re-encoding the data (an export writes millions of them; ``tests/test_export.py``
holds it equal to ``to_cloudevent``)."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from shopstream_contracts import REGISTRY
from shopstream_contracts.errors import UnknownEventType
from shopstream_eventstore import RecordedEvent
from shopstream_messaging.cloudevents import SPECVERSION, CloudEvent
from shopstream_messaging.publishing import ToPublic, contract_publication

from .sources import StoredEvent, owner_of

_owner = functools.cache(owner_of)


@functools.cache
def _publication(service: str) -> ToPublic:
    return contract_publication(REGISTRY, service)


def to_cloudevent(service: str, event: RecordedEvent) -> tuple[str | None, CloudEvent]:
    """The event's contract topic (None for an internal event) and its CloudEvent. ``service`` is
    the store it was read from: an inbox copy is built as its owner published it."""
    owner = _owner(event.type)
    if owner is not None:
        published = _publication(owner)(event)
        if published is not None:
            return published
    meta = event.metadata
    return None, CloudEvent(
        id=str(event.event_id),
        source=f"/shopstream/{service}",
        type=event.type,
        time=meta.occurred_at,
        subject=event.stream_id,
        data=dict(event.data),
        dataversion=event.data_version,
        correlationid=meta.correlation_id,
        causationid=meta.causation_id,
        key=event.stream_id,
    )


@functools.cache
def _contract(event_type: str) -> tuple[str, str] | None:
    """(source, key field) of a public event type; None for an internal one."""
    try:
        topic = REGISTRY.topic(event_type)
    except UnknownEventType:
        return None
    return topic.source, topic.key


def row(service: str, event: StoredEvent) -> tuple[Any, ...]:
    """``formats.ENVELOPE`` + ``data`` of an event read from ``service``'s store. The data is the
    stored JSON text, as an ``orjson.Fragment`` (JSONL embeds it, CSV and Parquet write it as is);
    it is decoded only for a public event's subject (its contract's key field)."""
    contract = _contract(event.type)
    if contract is None:
        source, subject = f"/shopstream/{service}", event.stream_id
    else:
        source, subject = contract[0], str(event.data[contract[1]])
    meta = event.metadata
    return (
        event.event_id,
        source,
        event.type,
        SPECVERSION,
        meta.occurred_at,
        subject,
        event.data_version,
        meta.correlation_id,
        meta.causation_id,
        contract is None,
        service,
        event.stream_id,
        event.stream_version,
        event.position,
        event.recorded_at,
        orjson.Fragment(event.data_text),
    )
