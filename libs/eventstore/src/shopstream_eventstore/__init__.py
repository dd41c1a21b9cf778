"""One async event-store interface and its adapters (SQLite, PostgreSQL, KurrentDB)."""

from ._serialization import load_metadata
from .errors import DuplicateEventId, EventStoreError, StoreUnavailable, WrongExpectedVersion
from .model import (
    AppendRequest,
    AppendResult,
    EventMetadata,
    ExpectedVersion,
    NewEvent,
    RawEvent,
    RecordedEvent,
    StreamState,
)
from .store import EventStore

__all__ = [
    "AppendRequest",
    "AppendResult",
    "DuplicateEventId",
    "EventMetadata",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "NewEvent",
    "RawEvent",
    "RecordedEvent",
    "StoreUnavailable",
    "StreamState",
    "WrongExpectedVersion",
    "load_metadata",
]
