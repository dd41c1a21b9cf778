"""How SQL adapters turn events into column values and back. Shared so that a SQLite and a
PostgreSQL store holding the same events return equal ``RecordedEvent``s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, SafeUUID

import orjson

from .model import EventMetadata, NewEvent, RawEvent, RecordedEvent


def dump_data(event: NewEvent) -> str:
    return orjson.dumps(event.data).decode()


def dump_metadata(meta: EventMetadata) -> str:
    doc: dict[str, Any] = {"occurred_at": meta.occurred_at.isoformat()}
    if meta.correlation_id is not None:
        doc["correlation_id"] = meta.correlation_id
    if meta.causation_id is not None:
        doc["causation_id"] = meta.causation_id
    if meta.extra:
        doc["extra"] = dict(meta.extra)
    return orjson.dumps(doc).decode()


def load_metadata(raw: str | bytes) -> EventMetadata:
    """The ``EventMetadata`` of a stored metadata text (``RawEvent.metadata``), times in UTC."""
    doc: Mapping[str, Any] = orjson.loads(raw)
    get = doc.get
    # Positional: this runs once per event read, and keyword binding is a measurable part of it.
    return EventMetadata(
        _utc(datetime.fromisoformat(doc["occurred_at"])),
        get("correlation_id"),
        get("causation_id"),
        get("extra", {}),
    )


def load_uuid(text: str) -> UUID:
    """``UUID(text)`` for the canonical form a store wrote, without its pure-Python parsing (the
    largest single cost of decoding an event read from SQLite); anything else goes through it."""
    if len(text) != 36:
        return UUID(text)
    value = object.__new__(UUID)
    object.__setattr__(value, "int", int(text.replace("-", ""), 16))
    object.__setattr__(value, "is_safe", SafeUUID.unknown)
    return value


def recorded(
    *,
    event_id: str | UUID,
    stream_id: str,
    stream_version: int,
    position: int,
    type_: str,
    data_version: int,
    data: str | bytes,
    metadata: str | bytes,
    recorded_at: str | datetime,
) -> RecordedEvent:
    return RecordedEvent(
        event_id if isinstance(event_id, UUID) else load_uuid(event_id),
        stream_id,
        stream_version,
        position,
        type_,
        data_version,
        orjson.loads(data),
        load_metadata(metadata),
        utc_time(recorded_at),
    )


def utc_time(stored: str | datetime) -> datetime:
    """A stored timestamp (SQLite keeps ISO text, PostgreSQL a timestamptz) in UTC."""
    return _utc(stored if isinstance(stored, datetime) else datetime.fromisoformat(stored))


def raw(event: RecordedEvent) -> RawEvent:
    """The raw form of an event a backend only hands out decoded."""
    return RawEvent(
        event.position,
        str(event.event_id),
        event.stream_id,
        event.stream_version,
        event.type,
        event.data_version,
        orjson.dumps(event.data).decode(),
        dump_metadata(event.metadata),
        event.recorded_at,
    )


def _utc(moment: datetime) -> datetime:
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)
