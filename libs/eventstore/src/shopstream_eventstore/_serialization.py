"""How SQL adapters turn events into column values and back. Shared so that a SQLite and a
PostgreSQL store holding the same events return equal ``RecordedEvent``s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from .model import EventMetadata, NewEvent, RecordedEvent


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
    doc: Mapping[str, Any] = orjson.loads(raw)
    return EventMetadata(
        occurred_at=_utc(datetime.fromisoformat(doc["occurred_at"])),
        correlation_id=doc.get("correlation_id"),
        causation_id=doc.get("causation_id"),
        extra=doc.get("extra", {}),
    )


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
        event_id=event_id if isinstance(event_id, UUID) else UUID(event_id),
        stream_id=stream_id,
        stream_version=stream_version,
        position=position,
        type=type_,
        data_version=data_version,
        data=orjson.loads(data),
        metadata=load_metadata(metadata),
        recorded_at=_utc(
            recorded_at if isinstance(recorded_at, datetime) else datetime.fromisoformat(recorded_at)
        ),
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
