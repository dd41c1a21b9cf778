"""Commands on a room: decided one after another on a cached state, appended together.

A live's room takes thousands of posts a second, all on one stream. The kit's
``CommandHandler`` loads the whole stream for every command (O(room size) per post) and
concurrent posts collide on the expected version and retry until they give up. Here each room
has one writer per process: commands queue while an append is in flight; the writer then decides
every queued command in turn on the room's cached state and appends all their events in one
append at the expected version. The state stays cached between batches (the stream is read once
per process), so a post costs its decision and its share of one append.

Another process writing the room (a replica) makes the append fail on the expected version: the
cache is dropped, the stream read again, the batch decided again. Command ids work as with the
kit's handler: event ids derive from them, and a command id already in the stream answers as a
duplicate without deciding again.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from shopstream_eventstore import EventMetadata, NewEvent, StreamState, WrongExpectedVersion
from shopstream_observability.metrics import EVENTS_APPENDED
from shopstream_service.commands import ConcurrencyConflict, Outcome, event_id_for
from shopstream_service.domain import DomainEvent
from shopstream_service.runtime import ServiceContext

from .commands import BannedWordList, RoomCommand
from .domain import RoomDecider, RoomState

MAX_ATTEMPTS = 20
CACHED_ROOMS = 256


@dataclass(slots=True)
class _Pending:
    command: RoomCommand
    command_id: uuid.UUID
    correlation_id: str
    causation_id: str
    done: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class _Room:
    state: RoomState
    version: int | None
    positions: dict[uuid.UUID, int]
    """Every event id of the stream and its position: commands already executed."""


class RoomWriters:
    """The writers of every room of this process, and the rooms' cached states (the most
    recently used ``CACHED_ROOMS``)."""

    def __init__(self) -> None:
        self._queues: dict[str, list[_Pending]] = {}
        self._cache: OrderedDict[str, _Room] = OrderedDict()
        self._writing: set[asyncio.Task[None]] = set()

    async def execute(
        self,
        context: ServiceContext,
        banned_words: Callable[[], Awaitable[BannedWordList]],
        stream_id: str,
        command: RoomCommand,
        *,
        command_id: uuid.UUID,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Outcome:
        pending = _Pending(
            command,
            command_id,
            correlation_id or str(command_id),
            causation_id or str(command_id),
        )
        queue = self._queues.get(stream_id)
        if queue is None:
            queue = self._queues[stream_id] = []
            task = asyncio.create_task(
                self._write(context, banned_words, stream_id), name=f"chat-writer:{stream_id}"
            )
            self._writing.add(task)  # a reference, so the loop does not lose it mid-batch
            task.add_done_callback(self._writing.discard)
        queue.append(pending)
        # Shielded: a client that goes away must not cancel a batch other clients wait on.
        return await asyncio.shield(pending.done)

    async def _write(
        self, context: ServiceContext, banned_words: Callable[[], Awaitable[BannedWordList]], stream_id: str
    ) -> None:
        """Batch after batch until nothing is queued; each batch decides with the newest
        banned-word list (one look-up per batch, not per command)."""
        try:
            while queue := self._queues[stream_id]:
                self._queues[stream_id] = []
                try:
                    decider = RoomDecider(await banned_words())
                    await self._execute(context, decider, stream_id, queue)
                except Exception as exc:
                    for pending in queue:
                        if not pending.done.done():
                            pending.done.set_exception(exc)
        finally:
            del self._queues[stream_id]

    async def _execute(
        self, context: ServiceContext, decider: RoomDecider, stream_id: str, batch: Sequence[_Pending]
    ) -> None:
        for attempt in range(MAX_ATTEMPTS):
            room = await self._room(context, decider, stream_id)
            decided, twins, events = self._decide(context, decider, room, batch)
            if not events:
                return
            expected = StreamState.NO_STREAM if room.version is None else room.version
            # The cached state already holds the batch's events: until the append succeeds it is
            # not the stream's state, so it is dropped and read again if the append fails.
            self._cache.pop(stream_id, None)
            try:
                result = await context.store.append(stream_id, events, expected)
            except WrongExpectedVersion:
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))  # spread the retries
                continue
            if result.duplicate:  # another process executed these very commands: read what it wrote
                for pending in [*(pending for pending, _ in decided), *twins]:
                    pending.done.set_result(Outcome((), result.next_expected_version, result.position, True))
                return
            EVENTS_APPENDED.labels(context.name).inc(len(events))
            room.version = result.next_expected_version
            for event in events:
                room.positions[event.event_id] = result.position
            self._cache[stream_id] = room
            for pending, caused in decided:
                pending.done.set_result(Outcome(caused, room.version, result.position))
            for twin in twins:  # the same command id twice at once: the second is a repeat
                twin.done.set_result(Outcome((), room.version, result.position, duplicate=True))
            return
        raise ConcurrencyConflict(stream_id, MAX_ATTEMPTS)

    def _decide(
        self, context: ServiceContext, decider: RoomDecider, room: _Room, batch: Sequence[_Pending]
    ) -> tuple[list[tuple[_Pending, Sequence[DomainEvent]]], list[_Pending], list[NewEvent]]:
        """Each command of the batch decided on the state its predecessors left (evolving the
        cached state): the commands that caused events, the repeats of one of them in the same
        batch, and all those events. The others are answered here: earlier commands, refusals,
        no-ops."""
        decided: list[tuple[_Pending, Sequence[DomainEvent]]] = []
        events: list[NewEvent] = []
        in_batch: set[uuid.UUID] = set()
        twins: list[_Pending] = []
        for pending in batch:
            if pending.done.done():
                continue
            executed = room.positions.get(pending.command_id)
            if executed is not None:
                pending.done.set_result(Outcome((), room.version, executed, duplicate=True))
                continue
            if pending.command_id in in_batch:
                twins.append(pending)
                continue
            try:
                caused = decider.decide(pending.command, room.state)
            except Exception as exc:
                pending.done.set_exception(exc)
                continue
            if not caused:
                pending.done.set_result(Outcome((), room.version, 0))
                continue
            metadata = EventMetadata(
                occurred_at=context.clock.now(),
                correlation_id=pending.correlation_id,
                causation_id=pending.causation_id,
            )
            for index, event in enumerate(caused):
                room.state = decider.evolve(room.state, event)
                events.append(
                    context.catalog.to_new(event, event_id_for(pending.command_id, index), metadata)
                )
            decided.append((pending, caused))
            in_batch.add(pending.command_id)
        return decided, twins, events

    async def _room(self, context: ServiceContext, decider: RoomDecider, stream_id: str) -> _Room:
        room = self._cache.get(stream_id)
        if room is not None:
            self._cache.move_to_end(stream_id)
            return room
        recorded = await context.store.read_stream(stream_id)
        state = decider.initial_state()
        for event in recorded:
            state = decider.evolve(state, context.catalog.decode(event))
        room = _Room(
            state,
            recorded[-1].stream_version if recorded else None,
            {event.event_id: event.position for event in recorded},
        )
        self._cache[stream_id] = room
        while len(self._cache) > CACHED_ROOMS:
            self._cache.popitem(last=False)
        return room
