"""The one event-store interface. Every adapter passes the same conformance suite
(``libs/eventstore/tests/conformance``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from .errors import EventStoreError
from .model import (
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RawEvent,
    RecordedEvent,
    StreamState,
)


@runtime_checkable
class EventStore(Protocol):
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        """Append atomically. Raises ``WrongExpectedVersion`` when the stream is elsewhere.

        Idempotent by event id: if every event id is already in this stream (a retry of an append
        that succeeded), nothing is written and the result has ``duplicate=True`` whatever the
        expected version. Any other overlap raises ``DuplicateEventId``.
        """
        ...

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Several appends in one transaction: all are written or none (a conflict in any raises)."""
        ...

    async def append_each(self, requests: Sequence[AppendRequest]) -> list[AppendResult | EventStoreError]:
        """Several appends, each decided on its own, in order, as ``append`` would decide it: the
        outcome of each is its result or the error ``append`` would raise for it
        (``WrongExpectedVersion``, ``DuplicateEventId``), and every request that succeeded is
        durable on return. A request reusing an event id of an earlier one in the call is decided
        once that one is stored, like a retry of it: ``duplicate=True`` when its ids are all in its
        own stream, else ``DuplicateEventId``.

        The SQL stores write the whole call in one transaction (requests reusing an earlier one's
        id in a second). Raises only when the store cannot write (``StoreUnavailable``); then any
        of the requests may have been written, each one whole or not at all.
        """
        ...

    async def read_stream(self, stream_id: str, from_version: int = 0) -> list[RecordedEvent]:
        """The stream's events from ``from_version`` on; an empty list for a missing stream."""
        ...

    async def stream_version(self, stream_id: str) -> int | None:
        """The version of the stream's last event, None when the stream does not exist."""
        ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with a global position greater than ``after_position``, in commit order."""
        ...

    async def read_all_raw(self, after_position: int = 0, limit: int = 1000) -> list[RawEvent]:
        """What ``read_all`` returns, with data and metadata as the stored JSON text."""
        ...

    async def head_position(self) -> int:
        """The highest committed global position (0 for an empty store)."""
        ...

    def subscribe(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RecordedEvent]]:
        """Catch up from ``after_position`` then follow live appends, in batches, forever.

        Never skips and never repeats an event: each batch continues exactly after the previous one.
        """
        ...

    def subscribe_raw(self, after_position: int = 0, batch_size: int = 500) -> AsyncIterator[list[RawEvent]]:
        """``subscribe`` with the events as ``read_all_raw`` returns them."""
        ...

    async def get_checkpoint(self, name: str) -> int:
        """A durable position kept under ``name`` (0 when never saved)."""
        ...

    async def save_checkpoint(self, name: str, position: int) -> None: ...

    async def close(self) -> None: ...
