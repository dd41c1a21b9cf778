"""What goes into and comes out of an event store, independent of the backend.

Event data is a JSON object (``dict``); the store never interprets it. The type name and
data version are the contract's stable names (``shopstream.orders.OrderPlaced``, 1), never
a Python import path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    ANY = "any"
    """Append whatever the stream's version is."""
    NO_STREAM = "no_stream"
    """Append only if the stream has no event yet."""
    EXISTS = "exists"
    """Append only if the stream has at least one event."""


ExpectedVersion = int | StreamState
"""An exact version is the 0-based version of the stream's last event (a stream with one event
is at version 0), as in KurrentDB."""


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """Who caused an event and when it happened (the clock is injected by the caller)."""

    occurred_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: UUID
    type: str
    data: Mapping[str, Any]
    metadata: EventMetadata
    data_version: int = 1


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    event_id: UUID
    stream_id: str
    stream_version: int
    """0-based position of the event in its stream."""
    position: int
    """Global position: strictly increasing in commit order, starting at 1. Positions may skip
    numbers (a rolled-back append) but an event never becomes readable after a higher one."""
    type: str
    data_version: int
    data: Mapping[str, Any]
    metadata: EventMetadata
    recorded_at: datetime


class RawEvent(NamedTuple):
    """An event as the store holds it, its JSON left as text.

    For paths that pass events on rather than look into them (the relay, exports): decoding a
    row into a ``RecordedEvent`` and encoding its data again costs several times the read.
    """

    position: int
    event_id: str
    """Canonical text form of the UUID."""
    stream_id: str
    stream_version: int
    type: str
    data_version: int
    data: str
    """The JSON object of the event's data, as stored (key order and spacing are the backend's)."""
    metadata: str
    """The JSON object of ``EventMetadata``: ``occurred_at`` (ISO 8601) and, when set,
    ``correlation_id``, ``causation_id`` and ``extra``."""
    recorded_at: datetime
    """When the store committed it, in UTC."""


@dataclass(frozen=True, slots=True)
class AppendRequest:
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: ExpectedVersion = StreamState.ANY


@dataclass(frozen=True, slots=True)
class AppendResult:
    stream_id: str
    next_expected_version: int
    """The stream's version after the append (the version of its last event)."""
    position: int
    """Global position of the last event of this append."""
    duplicate: bool = False
    """True when every event id was already in the stream: an idempotent retry, nothing written."""
