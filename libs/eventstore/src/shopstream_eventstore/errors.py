"""Errors every adapter raises the same way, so callers never catch backend exceptions."""

from __future__ import annotations

from uuid import UUID

from .model import ExpectedVersion


class EventStoreError(Exception):
    """Base of every error the event store raises on purpose."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the command was decided on: reload, decide again, retry."""

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        shown = "no stream" if actual is None else str(actual)
        super().__init__(f"stream {stream_id!r}: expected version {expected!r}, actual {shown}")


class DuplicateEventId(EventStoreError):
    """An event id is already stored, but not as an exact retry of the same append."""

    def __init__(self, event_id: UUID, reason: str) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id}: {reason}")


class StoreUnavailable(EventStoreError):
    """The backend cannot be reached; the caller may retry later. Nothing was written."""
