"""Command handling: load the stream, fold, decide, append at the expected version, retry.

Event ids are derived from the command id (uuid5), so executing the same command twice — a
client retry, a policy re-run after a crash — finds its events already stored and writes
nothing. A concurrent writer makes the append fail on the expected version: the handler
reloads and decides again on the new state, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shopstream_eventstore import EventMetadata, EventStore, RecordedEvent, StreamState, WrongExpectedVersion
from shopstream_observability import get_logger
from shopstream_observability.metrics import EVENTS_APPENDED
from shopstream_processing import IssuedCommand

from .clock import Clock
from .domain import Decider, DomainEvent
from .events import EventCatalog

S = TypeVar("S")
C = TypeVar("C")

log = get_logger(__name__)


class ConcurrencyConflict(Exception):
    """The stream kept moving under the command; the client may retry (HTTP 409 + Retry-After)."""

    def __init__(self, stream_id: str, attempts: int) -> None:
        super().__init__(f"stream {stream_id!r} changed concurrently {attempts} times; retry")
        self.stream_id = stream_id


def event_id_for(command_id: uuid.UUID, index: int) -> uuid.UUID:
    return command_id if index == 0 else uuid.uuid5(command_id, str(index))


def _already_executed(recorded: Sequence[RecordedEvent], command_id: uuid.UUID) -> list[RecordedEvent]:
    """The events a command with this id wrote to the stream, if it was executed before."""
    for start, event in enumerate(recorded):
        if event.event_id == command_id:
            written = [event]
            for index, later in enumerate(recorded[start + 1 :], start=1):
                if later.event_id != event_id_for(command_id, index):
                    break
                written.append(later)
            return written
    return []


@dataclass(frozen=True, slots=True)
class Outcome:
    events: Sequence[DomainEvent]
    """The events this command caused (empty when it changed nothing)."""
    version: int | None
    """The stream's version after the command (None: the stream still does not exist)."""
    position: int
    """Global position of the last event written (0 when nothing was written): wait for a
    projection to reach it for read-your-writes."""
    duplicate: bool = False
    """The command had already been executed: nothing was written this time."""


class CommandHandler:
    def __init__(self, store: EventStore, catalog: EventCatalog, clock: Clock, *, service: str) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self._service = service

    async def load(self, decider: Decider[S, Any], stream_id: str) -> tuple[S, int | None]:
        state, version, _ = await self._load(decider, stream_id)
        return state, version

    async def _load(
        self, decider: Decider[S, Any], stream_id: str
    ) -> tuple[S, int | None, list[RecordedEvent]]:
        recorded = await self.store.read_stream(stream_id)
        state = decider.initial_state()
        for event in recorded:
            state = decider.evolve(state, self.catalog.decode(event))
        return state, (recorded[-1].stream_version if recorded else None), recorded

    async def execute(
        self,
        decider: Decider[S, C],
        stream_id: str,
        command: C,
        *,
        command_id: uuid.UUID,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        max_attempts: int = 20,
    ) -> Outcome:
        for attempt in range(max_attempts):
            state, version, recorded = await self._load(decider, stream_id)
            done = _already_executed(recorded, command_id)
            if done:
                # A retry (same Idempotency-Key, a policy re-run): answer as the first time did,
                # without deciding again on a state that already contains the command's effect.
                return Outcome(
                    [self.catalog.decode(event) for event in done], version, done[-1].position, duplicate=True
                )
            events = decider.decide(command, state)
            if not events:
                return Outcome((), version, 0)
            metadata = EventMetadata(
                occurred_at=self.clock.now(),
                correlation_id=correlation_id or str(command_id),
                causation_id=causation_id or str(command_id),
            )
            new = [
                self.catalog.to_new(event, event_id_for(command_id, index), metadata)
                for index, event in enumerate(events)
            ]
            expected = StreamState.NO_STREAM if version is None else version
            try:
                result = await self.store.append(stream_id, new, expected)
            except WrongExpectedVersion:
                # Concurrent writers on a hot stream: spread the retries out so they stop colliding.
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            if not result.duplicate:
                EVENTS_APPENDED.labels(self._service).inc(len(new))
            return Outcome(events, result.next_expected_version, result.position, result.duplicate)
        raise ConcurrencyConflict(stream_id, max_attempts)

    async def execute_issued(
        self, decider: Decider[S, C], stream_id: str, issued: IssuedCommand[C]
    ) -> Outcome:
        """Execute a command a policy issued: its id comes from the causing event, its events are
        caused by that event and stay in its correlation."""
        cause = issued.cause
        return await self.execute(
            decider,
            stream_id,
            issued.command,
            command_id=issued.command_id,
            correlation_id=cause.metadata.correlation_id or str(cause.event_id),
            causation_id=str(cause.event_id),
        )
